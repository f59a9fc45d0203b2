"""Reading what a sandboxed command left in its job's folder.

Once package code has run in a job's folder, everything in it is the
package's: a build output may be a symbolic link to the worker's secrets
file, a folder on the way to it a link to another job's, a "file" a FIFO
that never ends. The worker runs as root and would follow them all. So it
reads such files only through these functions: each path is walked from a
folder the worker made, one component at a time, never following a link
(``O_NOFOLLOW``), and only a regular file is read, up to a limit. Nothing is
ever written there by path after a sandboxed command ran.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePath

from releases.errors import StepFailed

CHUNK = 1 << 20
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def _folder(root: Path, relative: PurePath) -> Iterator[int]:
    """A descriptor of ``root / relative``, reached without following a link."""
    parts = relative.parts
    if relative.is_absolute() or any(part in {"..", "."} for part in parts):
        raise ValueError(f"{relative} is not a plain relative path")
    fd = os.open(root, _DIRECTORY)
    try:
        for part in parts:
            try:
                inner = os.open(part, _DIRECTORY, dir_fd=fd)
            except OSError as exc:
                raise StepFailed(f"{relative} is not a folder the job made ({exc.strerror}).") from None
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def regular_files(root: Path, relative: PurePath | str) -> list[str]:
    """The names of the regular files in ``root / relative`` (links, folders
    and anything else left out), sorted; [] when it does not exist."""
    try:
        with _folder(root, PurePath(relative)) as fd:
            names = []
            for name in os.listdir(fd):
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        names.append(name)
            return sorted(names)
    except StepFailed:
        return []


@contextlib.contextmanager
def _opened(root: Path, relative: PurePath, limit: int) -> Iterator[int]:
    with _folder(root, relative.parent) as folder:
        try:
            fd = os.open(relative.name, _FILE, dir_fd=folder)
        except OSError as exc:
            raise StepFailed(f"{relative} cannot be read: {exc.strerror} (a link, or not there).") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StepFailed(f"{relative} is not a regular file.")
        if info.st_size > limit:
            raise StepFailed(f"{relative} is larger than {limit:,} bytes.")
        yield fd
    finally:
        os.close(fd)


def read_file(root: Path, relative: PurePath | str, *, limit: int) -> bytes:
    """The bytes of the regular file ``root / relative``, at most ``limit``."""
    path = PurePath(relative)
    with _opened(root, path, limit) as fd:
        data = b""
        while chunk := os.read(fd, CHUNK):
            data += chunk
            if len(data) > limit:
                raise StepFailed(f"{path} is larger than {limit:,} bytes.")
        return data


def copy_file(root: Path, relative: PurePath | str, target: Path, *, limit: int) -> Path:
    """Copy the regular file ``root / relative`` to ``target`` (a new file,
    in a folder no sandbox sees), at most ``limit`` bytes; ``target``."""
    path = PurePath(relative)
    with _opened(root, path, limit) as fd:
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(out, "wb") as handle:
                copied = 0
                while chunk := os.read(fd, CHUNK):
                    copied += len(chunk)
                    if copied > limit:
                        raise StepFailed(f"{path} is larger than {limit:,} bytes.")
                    handle.write(chunk)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
    return target
