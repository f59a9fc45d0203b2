"""The state of the PyPI stand-in: projects, releases, files, tokens, and
the log of filenames once used (warehouse's ``Filename``), arranged by tests
and changed by uploads."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from packaging.utils import canonicalize_name, canonicalize_version

ONE_MIB = 1024 * 1024
ONE_GIB = 1024 * ONE_MIB


@dataclass
class StoredFile:
    """One file PyPI holds (warehouse's ``File``)."""

    filename: str
    content: bytes
    packagetype: str  # "sdist" or "bdist_wheel"
    python_version: str
    upload_time: datetime
    core_metadata: bytes | None = None  # a wheel's METADATA, served at <url>.metadata
    provenance: dict[str, Any] | None = None
    counted_size: int | None = None  # the size PyPI records, when a test wants a big file without the bytes

    @property
    def size(self) -> int:
        return len(self.content) if self.counted_size is None else self.counted_size

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def blake2_256(self) -> str:
        return hashlib.blake2b(self.content, digest_size=32).hexdigest()

    @property
    def md5(self) -> str:
        return hashlib.md5(self.content, usedforsecurity=False).hexdigest()

    @property
    def path(self) -> str:
        digest = self.blake2_256
        return f"{digest[:2]}/{digest[2:4]}/{digest[4:]}/{self.filename}"


@dataclass
class StoredRelease:
    version: str
    created: datetime
    requires_python: str | None = None
    summary: str | None = None
    yanked: bool = False
    yanked_reason: str = ""
    files: list[StoredFile] = field(default_factory=list)


@dataclass
class StoredProject:
    name: str
    owners: list[str]
    maintainers: list[str] = field(default_factory=list)
    upload_limit: int | None = None  # per-project file size limit, as PyPI's admins set it
    total_size_limit: int | None = None
    releases: dict[str, StoredRelease] = field(default_factory=dict)  # by canonical version

    @property
    def normalized_name(self) -> str:
        return canonicalize_name(self.name)

    @property
    def total_size(self) -> int:
        return sum(f.size for r in self.releases.values() for f in r.files)

    def can_upload(self, user: str) -> bool:
        return user in self.owners or user in self.maintainers


@dataclass(frozen=True)
class Token:
    user: str
    projects: frozenset[str] | None = None  # normalized names of a project-scoped token


class PypiState:
    """Everything the stand-in knows; tests arrange it through these methods."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.projects: dict[str, StoredProject] = {}
        self.tokens: dict[str, Token] = {}
        self.deleted_filenames: set[str] = set()  # warehouse's Filename log, for files since deleted
        self.prohibited_names: set[str] = set()
        self.max_file_size = 100 * ONE_MIB  # warehouse.constants.MAX_FILESIZE
        self.max_project_size = 10 * ONE_GIB  # warehouse.constants.MAX_PROJECT_SIZE
        self.site = "https://pypi.org"  # where the messages' help links point, as on PyPI
        self.html_only = False  # answer the simple API as an index without PEP 691 does
        self.failures: list[int] = []  # statuses to answer the next GET requests with (503, 429...)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def token_for(self, user: str, *, projects: list[str] | None = None) -> str:
        """A new API token for ``user``, shaped like PyPI's (``pypi-`` then a macaroon)."""
        token = "pypi-" + secrets.token_urlsafe(48)
        scope = frozenset(canonicalize_name(p) for p in projects) if projects is not None else None
        self.tokens[token] = Token(user, scope)
        return token

    def add_project(self, name: str, *, owners: list[str], maintainers: list[str] | None = None) -> StoredProject:
        project = StoredProject(name=name, owners=list(owners), maintainers=list(maintainers or []))
        self.projects[project.normalized_name] = project
        return project

    def add_release(
        self,
        name: str,
        version: str,
        *,
        created: datetime,
        files: dict[str, bytes] | None = None,
        owners: list[str] | None = None,
    ) -> StoredRelease:
        """A release published at ``created``, with ``files`` (filename: bytes) uploaded then."""
        project = self.projects.get(canonicalize_name(name)) or self.add_project(name, owners=owners or ["someone"])
        release = project.releases.setdefault(canonicalize_version(version), StoredRelease(version, created))
        for filename, content in (files or {}).items():
            kind = "bdist_wheel" if filename.endswith(".whl") else "sdist"
            release.files.append(
                StoredFile(filename, content, kind, "source" if kind == "sdist" else "py3", upload_time=created)
            )
        return release

    def delete_file(self, filename: str) -> None:
        """Delete a file as an owner can on PyPI: the file goes, its name stays used."""
        for project in self.projects.values():
            for release in project.releases.values():
                for stored in release.files:
                    if stored.filename == filename:
                        release.files.remove(stored)
                        self.deleted_filenames.add(filename)
                        return
        raise KeyError(filename)

    def yank(self, name: str, version: str, reason: str = "") -> None:
        release = self.projects[canonicalize_name(name)].releases[canonicalize_version(version)]
        release.yanked, release.yanked_reason = True, reason

    def find_file(self, filename: str) -> tuple[StoredProject, StoredRelease, StoredFile] | None:
        for project in self.projects.values():
            for release in project.releases.values():
                for stored in release.files:
                    if stored.filename == filename:
                        return project, release, stored
        return None
