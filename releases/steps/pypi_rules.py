"""PyPI's upload rules, checked before the first byte is sent.

PyPI (warehouse's ``forklift/legacy.py``) refuses files that devpi takes, one
file at a time: the sdist of a release can be live before its wheel is
refused. These functions take the release's local files and what the index
already says (``releases.clients.pypi_json``) and return every rule PyPI
would break, each with PyPI's own answer and one line a person can act on.
Pure: no database, no settings, no network.

Files already on the index with the same sha256 are not judged: the upload
step skips them, so they are never sent. The metadata rules are in
``pypi_metadata``, the platform tags in ``pypi_platforms``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from packaging.metadata import Metadata
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from releases.clients.pypi_json import PublishedProject
from releases.steps import pypi_metadata, pypi_platforms
from releases.steps.distfiles import INVALID, DistFile, read_dist, twine_name
from releases.steps.pypi_violations import Rule, Violation, violation

__all__ = [
    "PYPI_LIMITS",
    "IndexView",
    "Limits",
    "Rule",
    "Violation",
    "check_credential",
    "check_paths",
    "check_release",
]

ONE_MIB = 1024 * 1024
ONE_GIB = 1024 * ONE_MIB
MAX_RELEASE_AGE = timedelta(days=14)  # MAXIMUM_AGE_FOR_NEW_UPLOADS_DAYS
PROJECT_NAME_RE = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE | re.ASCII)
STORAGE_LIMITS_URL = "https://docs.pypi.org/project-management/storage-limits"


@dataclass(frozen=True)
class Limits:
    """PyPI's default limits; an admin can raise them per project, unseen from outside."""

    file_size: int = 100 * ONE_MIB
    project_size: int = 10 * ONE_GIB


PYPI_LIMITS = Limits()


@dataclass(frozen=True)
class IndexView:
    """What the index says before the upload."""

    project: PublishedProject | None  # the JSON API's answer; None: no release there
    project_exists: bool = False  # the simple API has a page for it (releases or not)
    known_names: frozenset[str] | None = None  # every project name on the index, when it was asked
    site: str = "https://pypi.org"  # where PyPI's messages point for help


def check_paths(
    paths: Sequence[Path],
    index: IndexView,
    *,
    account: str | None,
    now: datetime,
    previously_uploaded: Collection[str] = (),
    limits: Limits = PYPI_LIMITS,
) -> list[Violation]:
    """``check_release`` on files read from ``paths``."""
    return check_release(
        [read_dist(p) for p in paths],
        index,
        account=account,
        now=now,
        previously_uploaded=previously_uploaded,
        limits=limits,
    )


def check_release(
    files: Sequence[DistFile],
    index: IndexView,
    *,
    account: str | None,
    now: datetime,
    previously_uploaded: Collection[str] = (),
    limits: Limits = PYPI_LIMITS,
) -> list[Violation]:
    """Every rule PyPI would break for ``files``, in the order twine sends them.

    ``account`` is the PyPI username the credential belongs to (None when the
    operator did not say: the owner check is then skipped);
    ``previously_uploaded`` the filenames the console once sent to this index
    (those missing now were deleted, and PyPI never takes a name back).
    """
    published = index.project
    on_index = {f.filename: f for f in published.files()} if published else {}
    to_send = [f for f in _upload_order(files) if f.filename not in on_index or on_index[f.filename].sha256 != f.sha256]
    violations: list[Violation] = []
    if to_send:
        name = _release_name(to_send)
        if name is not None:
            violations += _project_violations(name, index, account)
    total = published.total_size if published else 0
    sdists_sent: set[str] = set()
    for dist in to_send:
        total += dist.size
        found = _file_violations(dist, index, now=now, previously_uploaded=previously_uploaded)
        found += _size_violations(dist, total, limits)
        found += _sdist_count_violations(dist, index, sdists_sent)
        violations += found
    return violations


def _upload_order(files: Iterable[DistFile]) -> list[DistFile]:
    """The order twine sends them in one call: wheels first, whatever order it
    is given (twine/commands/__init__.py ``_group_wheel_files_first``)."""
    return sorted(files, key=lambda f: (f.kind != "bdist_wheel", f.filename))


def _release_name(files: Sequence[DistFile]) -> str | None:
    """The name twine sends, from the first file with metadata."""
    for dist in files:
        if dist.metadata and dist.metadata.get("name"):
            return twine_name(str(dist.metadata["name"]))
    return None


def _help(index: IndexView, anchor: str) -> str:
    return f"{index.site}/help/#{anchor}"


def check_credential(username: str, token: str | None, *, site: str = "https://pypi.org") -> list[Violation]:
    """What can be told of a credential without sending it: PyPI takes only
    an API token (username ``__token__``, token ``pypi-...``). A revoked or
    expired token looks the same as a good one until PyPI answers 403."""
    pypi_message = (
        f"Invalid or non-existent authentication information. See {site}/help/#invalid-auth for more information."
    )
    problem = ""
    if not token:
        problem = "the environment has no API token"
    elif username != "__token__":
        problem = f"PyPI takes only API tokens, with the username __token__ (not {username!r})"
    elif not token.startswith("pypi-"):
        problem = "the credential is not a PyPI API token (they start with 'pypi-')"
    if not problem:
        return []
    message = f"PyPI will refuse the credential: {problem}; create an API token on the index and store it."
    return [Violation(Rule.CREDENTIAL, None, message, 403, pypi_message)]


def _project_violations(name: str, index: IndexView, account: str | None) -> list[Violation]:
    published = index.project
    if published is not None or index.project_exists:
        if published is None or account is None or published.may_upload(account) is not False:
            return []
        users = ", ".join(sorted({r.user for r in published.roles or ()})) or "nobody listed"
        return [
            Violation(
                Rule.PROJECT_OWNER,
                None,
                f"The project {published.name!r} on the index belongs to other accounts ({users}), not {account!r}: "
                f"ask an owner to add {account!r} as a maintainer, or publish under another name.",
                403,
                f"The user '{account}' isn't allowed to upload to project '{published.name}'. "
                f"See {_help(index, 'project-name')} for more information.",
            )
        ]
    return _new_name_violations(name, index)


def ultranormalize_name(name: str) -> str:
    """warehouse's ``ultranormalize_name``: names equal under it are "too similar"."""
    stripped = re.sub(r"[._-]", "", name)
    return re.sub(r"[oO]", "0", re.sub(r"[lLiI]", "1", stripped)).lower()


def _new_name_violations(name: str, index: IndexView) -> list[Violation]:
    """A new project's name, as ``create_project`` judges it."""
    help_link = _help(index, "project-name")
    if not PROJECT_NAME_RE.match(name):
        return [_name(name, "is not a valid project name", 400, f"The name {name!r} is invalid.")]
    # warehouse refuses the modules of every Python it knows; this one's are the bulk of them.
    if canonicalize_name(name) in {canonicalize_name(m.strip("_")) for m in sys.stdlib_module_names}:
        return [
            _name(
                name,
                "is the name of a standard library module",
                400,
                f"The name {name!r} isn't allowed (conflict with Python Standard Library module name). "
                f"See {help_link} for more information.",
            )
        ]
    similar = sorted(n for n in index.known_names or () if ultranormalize_name(n) == ultranormalize_name(name))
    if similar:
        return [
            _name(
                name,
                f"is too similar to the existing project {similar[0]!r}",
                400,
                f"The name {name!r} is too similar to an existing project. See {help_link} for more information.",
            )
        ]
    return []


def _name(name: str, problem: str, status: int, pypi_message: str) -> Violation:
    message = f"The project name {name!r} {problem}; PyPI will not create it: rename the project in pyproject.toml."
    return Violation(Rule.PROJECT_NAME, None, message, status, pypi_message)


def _file_violations(
    dist: DistFile, index: IndexView, *, now: datetime, previously_uploaded: Collection[str]
) -> list[Violation]:
    if dist.metadata is None:
        problem = dist.problem or f"{INVALID} no metadata found"
        return [violation(Rule.DISTRIBUTION, dist, f"PyPI cannot read it ({problem}); build it again.", problem)]
    meta_or_errors = pypi_metadata.parse_metadata(dist)
    if isinstance(meta_or_errors, list):
        return meta_or_errors
    meta = meta_or_errors
    found = pypi_metadata.description_violations(dist, meta, _help(index, "description-content-type"))
    found += _filename_violations(dist)
    found += _existing_violations(dist, index, now=now, previously_uploaded=previously_uploaded)
    if dist.problem:
        found.append(
            violation(
                Rule.DISTRIBUTION, dist, f"PyPI refuses the archive ({dist.problem}); build it again.", dist.problem
            )
        )
    elif dist.kind == "sdist":
        found += _sdist_violations(dist, meta)
    elif dist.kind == "bdist_wheel":
        found += _wheel_violations(dist, meta)
    return found


def _filename_violations(dist: DistFile) -> list[Violation]:
    """forklift's ``_validate_filename``: characters and extension."""
    filename = dist.filename
    if any(ord(c) < 32 or ord(c) == 127 for c in filename) or "/" in filename or "\\" in filename:
        return [
            violation(
                Rule.FILENAME,
                dist,
                "the filename has characters PyPI refuses; rename it as the build back-end named it.",
                "Cannot upload a file with '/' or '\\' in the name.",
            )
        ]
    if dist.kind is None:
        return [
            violation(
                Rule.FILENAME,
                dist,
                "PyPI takes only .tar.gz sdists and .whl wheels; build them with the build back-end.",
                "Invalid file extension: Use .tar.gz, .whl or .zip extension. See https://www.python.org/dev/peps/pep-0527 "
                "and https://peps.python.org/pep-0715/ for more information",
            )
        ]
    return []


def _size_violations(dist: DistFile, project_total: int, limits: Limits) -> list[Violation]:
    name = twine_name(str((dist.metadata or {}).get("name", "")))
    if dist.size > limits.file_size:
        return [
            violation(
                Rule.FILE_SIZE,
                dist,
                f"{dist.size / ONE_MIB:.1f} MiB is over PyPI's {limits.file_size // ONE_MIB} MiB file limit; "
                "make the file smaller or request a file size limit increase on PyPI.",
                f"File too large. Limit for project {name!r} is {limits.file_size // ONE_MIB} MB. See "
                f"{STORAGE_LIMITS_URL}#requesting-a-file-size-limit-increase for more information.",
            )
        ]
    if project_total > limits.project_size:
        return [
            violation(
                Rule.PROJECT_SIZE,
                dist,
                f"the project would hold {project_total / ONE_GIB:.2f} GiB, over PyPI's "
                f"{limits.project_size // ONE_GIB} GiB project limit; delete old files or request a project size "
                "limit increase on PyPI.",
                f"Project size too large. Limit for project {name!r} total size is {limits.project_size // ONE_GIB} GB. "
                f"See {STORAGE_LIMITS_URL}#requesting-a-project-size-limit-increase",
            )
        ]
    return []


def _existing_violations(
    dist: DistFile, index: IndexView, *, now: datetime, previously_uploaded: Collection[str]
) -> list[Violation]:
    """What the index already holds: the filename, the bytes, the release's age."""
    published = index.project
    reuse = _help(index, "file-name-reuse")
    exists = (
        f"File already exists ({dist.filename!r}, with blake2_256 hash {dist.blake2b_256!r}). "
        f"See {reuse} for more information."
    )
    files = list(published.files()) if published else []
    same_name = next((f for f in files if f.filename == dist.filename), None)
    if same_name is not None:
        return [
            violation(
                Rule.FILE_EXISTS,
                dist,
                f"the index already has a different file of this name (sha256 {same_name.sha256}); "
                "a filename can never be reused: release a new version.",
                exists,
            )
        ]
    same_bytes = next((f for f in files if f.blake2b_256 == dist.blake2b_256), None)
    if same_bytes is not None:
        return [
            violation(
                Rule.FILE_EXISTS,
                dist,
                f"the index already has these very bytes as {same_bytes.filename}; PyPI takes a file's bytes once.",
                exists,
            )
        ]
    if dist.filename in previously_uploaded:
        return [
            violation(
                Rule.FILENAME_REUSED,
                dist,
                "the console uploaded this filename before and it has since been deleted from the index; "
                "PyPI never takes a deleted filename again: release a new version.",
                "This filename was previously used by a file that has since been deleted. Use a different version. "
                f"See {reuse} for more information.",
            )
        ]
    version = str((dist.metadata or {}).get("version", ""))
    release = published.release(version) if published and version else None
    started = release.first_upload if release else None
    if started is not None and started < now - MAX_RELEASE_AGE:
        return [
            violation(
                Rule.RELEASE_CLOSED,
                dist,
                f"release {version} was first published on {started:%Y-%m-%d}, more than 14 days ago, and PyPI "
                "takes no new files for it: release a new version (a post-release such as "
                f"{version}.post1 for the same code).",
                "Uploading new files to releases older than 14 days is not allowed.",
            )
        ]
    return []


def _sdist_count_violations(dist: DistFile, index: IndexView, sent: set[str]) -> list[Violation]:
    if dist.kind != "sdist":
        return []
    version = str((dist.metadata or {}).get("version", ""))
    release = index.project.release(version) if index.project and version else None
    # The same filename is the file-exists rule's, which PyPI applies first.
    others = (
        [f.filename for f in release.files if f.packagetype == "sdist" and f.filename != dist.filename]
        if release
        else []
    )
    others += sorted(sent)
    sent.add(dist.filename)
    if not others:
        return []
    return [
        violation(
            Rule.ONE_SDIST,
            dist,
            f"the release already has the sdist {others[0]}; PyPI takes one sdist per release: send only one.",
            "Only one sdist may be uploaded per release.",
        )
    ]


def _sdist_violations(dist: DistFile, meta: Metadata) -> list[Violation]:
    """An sdist's filename (PEP 625) and its License-File entries."""
    normalized = canonicalize_name(meta.name)
    try:
        name_from_filename, _ = parse_sdist_filename(dist.filename)
    except InvalidSdistFilename:
        return [_rename(dist, f"Invalid source distribution filename: {dist.filename}")]
    if canonicalize_name(name_from_filename) != normalized:
        return [_rename(dist, f"Start filename for {meta.name!r} with {normalized.replace('-', '_')!r}.")]
    expected = f"{normalized.replace('-', '_')}-{meta.version}.tar.gz"
    if dist.filename != expected:
        return [_rename(dist, f"Filename {dist.filename!r} is invalid, should be {expected!r}.")]
    return _license_violations(dist, meta, dist.top_level + "/")


def _wheel_violations(dist: DistFile, meta: Metadata) -> list[Violation]:
    """A wheel's filename: platform tags first, then name and version (PEP 427)."""
    try:
        name, version, _, tags = parse_wheel_filename(dist.filename)
    except InvalidWheelFilename as exc:
        return [_rename(dist, str(exc))]
    found = [
        violation(
            Rule.PLATFORM_TAG,
            dist,
            f"PyPI refuses the platform tag {platform}; {pypi_platforms.advice(platform)}",
            f"Binary wheel '{dist.filename}' has an unsupported platform tag '{platform}'.",
        )
        for platform in sorted({t.platform for t in tags})
        if not pypi_platforms.accepted(platform)
    ]
    normalized = canonicalize_name(meta.name).replace("-", "_")
    if canonicalize_name(meta.name) != name:
        found.append(_rename(dist, f"Start filename for {meta.name!r} with {normalized!r}."))
    elif (from_filename := dist.filename.split("-", 1)[0]) != normalized:
        message = f"Filename {dist.filename!r} should contain the normalized project name {normalized!r}, not {from_filename!r}."
        found.append(_rename(dist, message))
    elif meta.version != version:
        found.append(_rename(dist, f"Version in filename should be {str(meta.version)!r} not {str(version)!r}."))
    dist_info = "-".join(dist.filename.split("-", 2)[:2]) + ".dist-info/licenses/"
    return found + _license_violations(dist, meta, dist_info)


def _rename(dist: DistFile, pypi_message: str) -> Violation:
    advice = f"PyPI refuses the filename ({pypi_message}); upload the file under the name the build back-end gave it."
    return violation(Rule.FILENAME, dist, advice, pypi_message)


def _license_violations(dist: DistFile, meta: Metadata, prefix: str) -> list[Violation]:
    return [
        violation(
            Rule.LICENSE_FILE,
            dist,
            f"the metadata names the license file {license_file} but the archive lacks it; include it in the build.",
            f"License-File {license_file} does not exist in distribution file {dist.filename} at {prefix}{license_file}",
        )
        for license_file in meta.license_files or []
        if prefix + license_file not in dist.members
    ]
