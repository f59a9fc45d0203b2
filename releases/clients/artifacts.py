"""Artifact storage: the one module that writes and reads built files.

Files are kept by name (``project/version/filename``) in the storage that
``STORAGES["artifacts"]`` configures (console/artifact_storage.py): a local
folder, or an S3 compatible bucket through django-storages. On both:

* A name is written once (DESIGN.md principle 3). The same bytes again are
  accepted; other bytes are refused; nothing is overwritten, not even by two
  hosts storing at the same moment: the local folder publishes a finished
  file with a hard link, which fails when the name exists, and S3 is asked
  for a conditional put (``If-None-Match: *``) that it refuses with 412.
* Whatever is copied out to be sent somewhere is checked against the size
  and sha256 recorded at build time, and is refused, leaving nothing
  behind, when the store holds anything else.
* A wheel's METADATA is read with a few ranged requests, not a download.

Pure I/O: no models, and nothing of the console above it. The one piece of
configuration read here is the storage itself (Django's
``storages["artifacts"]``), so that every caller reaches the same store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from django.core.files.storage import FileSystemStorage, Storage, storages

from releases.errors import StepFailed

ALIAS = "artifacts"
CHUNK = 1 << 20
# Wheel members are read through a buffer this large: a ranged request each
# time the reader leaves it (the central directory, then the member).
RANGE_BUFFER = 64 << 10
# A METADATA larger than this is not a wheel's; package code is hostile.
METADATA_MAX_BYTES = 16 << 20


class ArtifactStorageError(StepFailed):
    """Artifact storage refused, or holds something it should not."""


class ArtifactConflict(ArtifactStorageError):
    """Other bytes are already stored under that name; they are kept."""


class ArtifactMissing(ArtifactStorageError):
    """Nothing is stored under that name."""


class ArtifactTampered(ArtifactStorageError):
    """The stored bytes are not the ones recorded at build time."""


class WheelUnreadable(ArtifactStorageError):
    """The stored file is not a readable wheel."""


@dataclass(frozen=True)
class StoredArtifact:
    """A file in artifact storage. ``created`` is False when the same bytes were already there."""

    name: str
    size: int
    sha256: str
    created: bool


@dataclass(frozen=True)
class FetchedArtifact:
    """A local copy of a stored file, checked against its recorded size and sha256."""

    name: str
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class ArtifactDownload:
    """A stored file on its way to a browser: ``chunks`` yields its bytes
    and stops with ArtifactTampered, before the last chunk, when they are
    not the recorded ones."""

    name: str
    size: int
    sha256: str
    chunks: Iterator[bytes]


@dataclass(frozen=True)
class WheelContents:
    """A stored wheel's member names and its ``.dist-info/METADATA``."""

    name: str
    members: tuple[str, ...]
    metadata_member: str
    metadata: bytes


def store(path: Path, name: str) -> StoredArtifact:
    """Store the file at ``path`` under ``name``, once.

    1. Hash the local file.
    2. When the name exists: the same size and sha256 is accepted as it is
       (an earlier attempt stored it); anything else is ArtifactConflict.
    3. Otherwise publish it write-once. When another writer got the name
       first, compare again as in 2.
    """
    backend = _backend()
    size, sha256 = _digest_file(path)
    if backend.size(name) is not None:
        return _same_or_conflict(backend, name, size, sha256)
    if backend.publish(path, name, size, sha256):
        return StoredArtifact(name, size, sha256, created=True)
    return _same_or_conflict(backend, name, size, sha256)


def fetch(name: str, destination: Path, *, sha256: str, size: int) -> FetchedArtifact:
    """Copy the stored file to ``destination``, checked against the recorded
    ``sha256`` and ``size``.

    The copy is written beside the destination and moved there only once
    it checks out, so that the destination holds either the verified file or
    nothing (a copy left there by an earlier attempt is removed first).
    Raises ArtifactMissing or ArtifactTampered.
    """
    backend = _backend()
    destination.unlink(missing_ok=True)
    fd, partial = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in _verified(name, backend.chunks(name), sha256=sha256, size=size):
                out.write(chunk)
        os.replace(partial, destination)
    finally:
        Path(partial).unlink(missing_ok=True)
    return FetchedArtifact(name, destination, size, sha256)


def open_download(name: str, *, sha256: str, size: int) -> ArtifactDownload:
    """The stored file, for streaming to a signed-in person.

    A missing file, or one of another size, is refused here, before any
    byte is sent. A file of the recorded size is checked while it streams,
    and its last chunk is held back until the sha256 matches: a file of one
    chunk (most wheels and sdists) is checked whole before anything is sent,
    and a larger tampered one arrives short, which a browser reports as a
    failed download rather than a finished file.
    """
    backend = _backend()
    stored = backend.size(name)
    if stored is None:
        raise ArtifactMissing(_missing_message(name))
    if stored != size:
        raise ArtifactTampered(_tampered_message(name, sha256, size, None, stored))
    return ArtifactDownload(name, size, sha256, _verified(name, backend.chunks(name), sha256=sha256, size=size))


def read_wheel(name: str) -> WheelContents:
    """A stored wheel's member names and METADATA, read in place.

    Only the zip's central directory and the METADATA member are read (a
    few ranged requests on S3), so the bytes are not checked against their
    sha256 here: use ``fetch`` for anything that is sent anywhere.
    """
    backend = _backend()
    try:
        with backend.open_seekable(name) as handle, zipfile.ZipFile(handle) as archive:
            members = tuple(archive.namelist())
            member = next((n for n in members if n.count("/") == 1 and n.endswith(".dist-info/METADATA")), None)
            if member is None:
                raise WheelUnreadable(f"{_filename(name)} has no .dist-info/METADATA.")
            declared = archive.getinfo(member).file_size
            if declared > METADATA_MAX_BYTES:
                raise WheelUnreadable(f"{_filename(name)} has a METADATA of {declared} bytes; that is no wheel's.")
            metadata = archive.read(member)
    # What a broken or hostile zip raises: a bad structure, a truncated or
    # corrupt stream, an unsupported compression method, an encrypted member.
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise WheelUnreadable(f"{_filename(name)} is not a readable wheel ({exc}).") from None
    return WheelContents(name, members, member, metadata)


# Checks and messages


def _same_or_conflict(backend: _Backend, name: str, size: int, sha256: str) -> StoredArtifact:
    stored_size, stored_sha256 = _digest_chunks(backend.chunks(name))
    if (stored_size, stored_sha256) != (size, sha256):
        raise ArtifactConflict(
            f"Artifact storage already holds a different {_filename(name)} "
            f"(sha256 {stored_sha256}, {stored_size} bytes; this one is sha256 {sha256}, {size} bytes). "
            "A stored file is never overwritten."
        )
    return StoredArtifact(name, size, sha256, created=False)


def _verified(name: str, chunks: Iterator[bytes], *, sha256: str, size: int) -> Iterator[bytes]:
    """Yield ``chunks`` while hashing them, holding the last one back until
    the whole matches ``sha256`` and ``size``. Past ``size`` nothing more is
    yielded, though the rest is still read to name the stored digest."""
    digest = hashlib.sha256()
    count = 0
    held = b""
    try:
        for chunk in chunks:
            digest.update(chunk)
            count += len(chunk)
            if held and count <= size:
                yield held
            held = chunk if count <= size else b""
        if (count, digest.hexdigest()) != (size, sha256):
            raise ArtifactTampered(_tampered_message(name, sha256, size, digest.hexdigest(), count))
        if held:
            yield held
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _tampered_message(name: str, sha256: str, size: int, stored_sha256: str | None, stored_size: int) -> str:
    held = f"sha256 {stored_sha256} ({stored_size} bytes)" if stored_sha256 else f"a file of {stored_size} bytes"
    return (
        f"The stored {_filename(name)} is not the file that was built: recorded sha256 {sha256} ({size} bytes), "
        f"artifact storage holds {held}. Nothing was sent or kept."
    )


def _missing_message(name: str) -> str:
    return f"{_filename(name)} is not in artifact storage (looked for {name})."


def _filename(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _digest_file(path: Path) -> tuple[int, str]:
    with path.open("rb") as handle:
        return _digest_chunks(iter(lambda: handle.read(CHUNK), b""))


def _digest_chunks(chunks: Iterator[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    count = 0
    for chunk in chunks:
        digest.update(chunk)
        count += len(chunk)
    return count, digest.hexdigest()


# Backends


class _Backend(Protocol):
    def size(self, name: str) -> int | None:
        """The stored size, or None when nothing is stored under ``name``."""

    def chunks(self, name: str) -> Iterator[bytes]:
        """The stored bytes, in chunks; ArtifactMissing when there are none."""

    def publish(self, source: Path, name: str, size: int, sha256: str) -> bool:
        """Store ``source`` under ``name`` unless the name exists; False when it does."""

    def open_seekable(self, name: str) -> IO[bytes]:
        """A seekable reader of the stored file; ArtifactMissing when there is none."""


@runtime_checkable
class _BackendStorage(Protocol):
    """A storage that brings its own backend: the bucket's
    (``artifact_bucket.BucketStorage``, which ``ARTIFACT_STORAGE=s3`` names
    in the settings), so that boto3 and django-storages' S3 backend, a
    twentieth of a second to import, are loaded by Django's storages only
    where a bucket is configured, never by this module."""

    def artifact_backend(self) -> _Backend: ...


def _backend() -> _Backend:
    storage: Storage = storages[ALIAS]
    if isinstance(storage, FileSystemStorage):
        return _Folder(storage)
    if isinstance(storage, _BackendStorage):
        return storage.artifact_backend()
    raise ArtifactStorageError(
        f"Artifact storage {type(storage).__name__} is not supported: use a local folder or S3 (ARTIFACT_STORAGE)."
    )


class _Folder:
    """A local (or shared network) folder."""

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def size(self, name: str) -> int | None:
        try:
            return os.stat(self.storage.path(name)).st_size
        except FileNotFoundError:
            return None

    def chunks(self, name: str) -> Iterator[bytes]:
        handle = self.open_seekable(name)
        with handle:
            yield from iter(lambda: handle.read(CHUNK), b"")

    def open_seekable(self, name: str) -> IO[bytes]:
        try:
            return open(self.storage.path(name), "rb")
        except FileNotFoundError:
            raise ArtifactMissing(_missing_message(name)) from None

    def publish(self, source: Path, name: str, size: int, sha256: str) -> bool:
        """Copy into a hidden file beside the target, then hard-link it to the
        name: the link appears whole or not at all, and fails if the name
        exists, so a crash leaves no half file and a race no overwrite."""
        target = Path(self.storage.path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as handle:
                copied = hashlib.sha256()
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    copied.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if copied.hexdigest() != sha256:
                raise ArtifactStorageError(f"{source.name} changed while it was being stored; nothing was stored.")
            os.chmod(partial, self.storage.file_permissions_mode or 0o444)
            try:
                os.link(partial, target)
            except FileExistsError:
                return False
            _fsync_folder(target.parent)
            return True
        finally:
            Path(partial).unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make the new name durable: a file recorded as built must survive a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
