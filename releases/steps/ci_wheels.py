"""Wheels built on CI: taken out of a workflow run's artifact archives and
checked against the release before they become its files.

An artifact archive is a zip that GitHub made of whatever the workflow
uploaded. Only wheels are taken (the release's sdist is the console's own);
each must be this project's and this version's, by its filename and by the
metadata inside it. Wheels of other projects (a monorepo's CI builds them
all) are left out, and said so.
"""

from __future__ import annotations

import email.parser
import hashlib
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from releases.errors import StepFailed
from releases.steps.workspace import Workspace

# A wheel larger than this is not accepted from CI (PyPI's own default file limit).
WHEEL_MAX_BYTES = 100 << 20
_SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.whl$")


@dataclass(frozen=True)
class CollectedWheel:
    path: Path
    archive: str  # the artifact it came in


def extract_wheels(
    ws: Workspace, archives: list[tuple[str, Path]], *, project: str, version: str, out: Path
) -> list[CollectedWheel]:
    """The wheels of ``project`` ``version`` in ``archives`` (artifact name, zip), written to ``out``.

    A wheel of this project with another version, one whose metadata says
    another name or version than its filename, two different wheels under
    one name, or no wheel at all, fail with a sentence.
    """
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, CollectedWheel] = {}
    digests: dict[str, str] = {}
    for artifact, archive in archives:
        for member, data in _wheel_members(artifact, archive):
            filename = PurePosixPath(member).name
            name, wheel_version = _filename_parts(artifact, filename)
            if canonicalize_name(name) != canonicalize_name(project):
                ws.log.write(f"{artifact}: {filename} is not {project}'s; left out")
                continue
            if wheel_version != Version(version):
                raise StepFailed(
                    f"The CI run's wheel {filename} (artifact {artifact!r}) is version {wheel_version}, but this "
                    f"release is {project} {version}: the workflow built another version. Build the release's "
                    "commit, then create the release again."
                )
            _check_metadata(artifact, filename, data, project, version)
            digest = hashlib.sha256(data).hexdigest()
            if filename in digests and digests[filename] != digest:
                raise StepFailed(f"The CI run holds two different files named {filename}; it must build each once.")
            if filename not in found:
                path = out / filename
                path.write_bytes(data)
                found[filename] = CollectedWheel(path, artifact)
                digests[filename] = digest
                ws.log.write(f"{artifact}: {filename}, {len(data)} bytes, sha256 {digest}")
    if not found:
        raise StepFailed(
            f"The CI run's artifacts ({', '.join(a for a, _ in archives) or 'none'}) hold no wheel of {project} "
            f"{version}: upload the wheels with actions/upload-artifact."
        )
    return sorted(found.values(), key=lambda w: w.path.name)


def _wheel_members(artifact: str, archive: Path) -> list[tuple[str, bytes]]:
    """Each ``.whl`` in the archive, with its bytes (at most WHEEL_MAX_BYTES each)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = []
            for info in bundle.infolist():
                if info.is_dir() or not info.filename.endswith(".whl"):
                    continue
                filename = PurePosixPath(info.filename).name
                if not _SAFE_FILENAME.match(filename):
                    raise StepFailed(
                        f"The CI artifact {artifact!r} holds a wheel with a name PyPI refuses: {filename!r}."
                    )
                if info.file_size > WHEEL_MAX_BYTES:
                    raise StepFailed(
                        f"The CI artifact {artifact!r} holds {filename} of {info.file_size} bytes, over "
                        f"{WHEEL_MAX_BYTES >> 20} MiB."
                    )
                members.append((info.filename, bundle.read(info)))
            return members
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise StepFailed(f"The CI artifact {artifact!r} is not a readable zip archive; download it again.") from None


def _filename_parts(artifact: str, filename: str) -> tuple[str, Version]:
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise StepFailed(f"The CI artifact {artifact!r} holds {filename!r}, not a valid wheel name: {exc}.") from None
    return name, version


def _check_metadata(artifact: str, filename: str, data: bytes, project: str, version: str) -> None:
    """The metadata inside says the same name and version as the filename."""
    prefix = "-".join(filename.split("-", 2)[:2])
    member = f"{prefix}.dist-info/METADATA"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            text = wheel.read(member).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, KeyError):
        raise StepFailed(f"{filename} (CI artifact {artifact!r}) is not a wheel: it has no {member}.") from None
    metadata = email.parser.Parser().parsestr(text, headersonly=True)
    name, said = str(metadata.get("Name", "")), str(metadata.get("Version", ""))
    try:
        same_version = Version(said) == Version(version)
    except InvalidVersion:
        same_version = False
    if canonicalize_name(name) != canonicalize_name(project) or not same_version:
        raise StepFailed(
            f"{filename} (CI artifact {artifact!r}) says it is {name} {said} inside, not {project} {version}."
        )
