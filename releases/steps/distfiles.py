"""A release's built files as an index reads them: kind, digests, and the
core metadata inside (a wheel's ``.dist-info/METADATA``, an sdist's
``PKG-INFO``), parsed the way twine sends it to the upload API."""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.metadata import RawMetadata, parse_email

Kind = Literal["sdist", "bdist_wheel"]
INVALID = "Invalid distribution file."


@dataclass(frozen=True)
class DistFile:
    """One local file about to be uploaded."""

    path: Path
    filename: str
    kind: Kind | None  # None: neither .tar.gz, .zip nor .whl
    size: int
    sha256: str
    blake2b_256: str
    members: frozenset[str]  # the archive's member names
    metadata: RawMetadata | None  # None: unreadable, and ``problem`` says why
    unparsed: tuple[str, ...] = ()  # metadata fields twine cannot read
    problem: str | None = None  # PyPI's answer to an archive it does not accept

    @property
    def top_level(self) -> str:
        """An sdist's single top-level folder ("" when it has none)."""
        return os.path.commonpath(sorted(self.members)) if self.members else ""


def kind_of(filename: str) -> Kind | None:
    if filename.endswith(".whl"):
        return "bdist_wheel"
    if filename.endswith((".tar.gz", ".zip")):
        return "sdist"
    return None


def twine_name(name: str) -> str:
    """The name twine puts in the upload form (its ``_safe_name``), which is
    the one PyPI's messages quote."""
    return re.sub("[^A-Za-z0-9.]+", "-", name)


def read_dist(path: Path) -> DistFile:
    """Digests, members and metadata of ``path``; a file that cannot be read
    is returned with ``problem`` set, never raised."""
    data = path.read_bytes()
    try:
        members, text, problem = _open(path, path.name)
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        members, text, problem = frozenset(), None, INVALID
    raw, unparsed = parse_email(text) if text is not None else (None, {})
    return DistFile(
        path=path,
        filename=path.name,
        kind=kind_of(path.name),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        blake2b_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
        members=members,
        metadata=raw,
        unparsed=tuple(sorted(unparsed)),
        problem=problem,
    )


def _open(path: Path, filename: str) -> tuple[frozenset[str], bytes | None, str | None]:
    """Members, the metadata file's bytes, and what is wrong with the archive
    (warehouse's ``_is_valid_dist_file`` without its malware scan)."""
    if filename.endswith((".whl", ".zip")):
        if not zipfile.is_zipfile(path):
            return frozenset(), None, f"{INVALID} File is not a zipfile"
        with zipfile.ZipFile(path) as archive:
            members = frozenset(archive.namelist())
            if any(i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) for i in archive.infolist()):
                return members, None, f"{INVALID} File does not use a supported compression type"
            target = _metadata_member(filename, members)
            if target is None or target not in members:
                return members, None, _missing(filename, members)
            return members, archive.read(target), None
    if filename.endswith(".tar.gz"):
        if not tarfile.is_tarfile(path):
            return frozenset(), None, f"{INVALID} File is not a tarfile"
        with tarfile.open(path, "r:gz") as tar:
            members = frozenset(tar.getnames())
            target = _metadata_member(filename, members)
            if target is None or target not in members:
                return members, None, _missing(filename, members)
            handle = tar.extractfile(target)
            return members, handle.read() if handle else None, None
    return frozenset(), None, None


def _metadata_member(filename: str, members: frozenset[str]) -> str | None:
    if filename.endswith(".whl"):
        parts = filename.split("-", 2)
        return f"{parts[0]}-{parts[1]}.dist-info/METADATA" if len(parts) == 3 else None
    top = os.path.commonpath(sorted(members)) if members else ""
    return None if top in (".", "/", "") else f"{top}/PKG-INFO"


def _missing(filename: str, members: frozenset[str]) -> str:
    """PyPI's answer to an archive without its metadata (or, for a wheel,
    without the ``WHEEL`` file it looks for first)."""
    if filename.endswith(".whl"):
        parts = filename.split("-", 2)
        if len(parts) < 3:
            return f"{INVALID} Unable to parse name and version from wheel filename"
        wheel = f"{parts[0]}-{parts[1]}.dist-info/WHEEL"
        if wheel not in members:
            return f"{INVALID} WHEEL not found at {wheel}"
        return (
            f"Wheel '{filename}' does not contain the required METADATA file: {parts[0]}-{parts[1]}.dist-info/METADATA"
        )
    top = os.path.commonpath(sorted(members)) if members else ""
    if top in (".", "/", ""):
        return f"{INVALID} Incorrect number of top-level directories in sdist"
    return f"{INVALID} PKG-INFO not found at {top}/PKG-INFO"
