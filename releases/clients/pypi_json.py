"""PyPI's JSON API (``/pypi/<name>/json``): what PyPI or Test PyPI already
holds for a project, for the upload rules to be checked before any byte is
sent.

What the console can know from it:

* whether the project has releases: 404 otherwise. A 404 does not prove the
  name is free: a project whose every release was deleted answers 404 here,
  and 200 with no files on the simple API (``releases.clients.index``);
* every release and its files: filename, package type, size, sha256,
  blake2b_256, upload time, yanked;
* who may upload: ``ownership.roles`` (usernames with Owner or Maintainer)
  and ``ownership.organization``, in the answers of current warehouse. An
  index that does not send them leaves ``roles`` as None: unknown.

What it cannot know, and nothing public answers:

* which account an API token belongs to: the owner check compares the roles
  with the account name the operator gave for the credential;
* whether a well-formed token is revoked, expired, or scoped to other
  projects (only an upload says: 403);
* a project's raised size limits (PyPI's defaults are assumed);
* filenames of deleted files, which PyPI refuses forever: only those the
  console itself once uploaded are known to it;
* prohibited names, and whether the uploader's account has 2FA and a
  verified e-mail address.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from packaging.utils import canonicalize_name, canonicalize_version

from releases.clients import http
from releases.errors import StepFailed


@dataclass(frozen=True)
class PublishedFile:
    filename: str
    packagetype: str  # "sdist" or "bdist_wheel"
    size: int
    sha256: str
    blake2b_256: str
    upload_time: datetime  # aware, UTC


@dataclass(frozen=True)
class PublishedRelease:
    version: str
    files: tuple[PublishedFile, ...]
    yanked: bool = False

    @property
    def first_upload(self) -> datetime | None:
        """When the release was made, as near as the API tells: its first file."""
        return min((f.upload_time for f in self.files), default=None)


@dataclass(frozen=True)
class Role:
    role: str  # "Owner" or "Maintainer"
    user: str


@dataclass(frozen=True)
class PublishedProject:
    name: str
    releases: dict[str, PublishedRelease]  # by version as PyPI spells it
    roles: tuple[Role, ...] | None  # None: this index does not say
    organization: str | None = None

    def release(self, version: str) -> PublishedRelease | None:
        """The release of ``version`` compared as PyPI does (canonical versions)."""
        wanted = canonicalize_version(version)
        return next((r for v, r in self.releases.items() if canonicalize_version(v) == wanted), None)

    def files(self) -> Iterator[PublishedFile]:
        for release in self.releases.values():
            yield from release.files

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files())

    def may_upload(self, account: str) -> bool | None:
        """Whether ``account`` has a role on the project; None when unknown."""
        if self.roles is None:
            return None
        return any(r.user.lower() == account.lower() for r in self.roles)


def json_api_url(index_url: str) -> str | None:
    """The JSON API beside a warehouse simple index (``https://pypi.org/simple/``
    gives ``https://pypi.org/pypi/``); None for an index of another shape."""
    base = index_url.rstrip("/")
    if not base.endswith("/simple"):
        return None
    return base.removesuffix("/simple") + "/pypi/"


def fetch_project(
    api_url: str, name: str, *, session: requests.Session | None = None, policy: http.RetryPolicy = http.DEFAULT_POLICY
) -> PublishedProject | None:
    """What ``api_url`` (``https://pypi.org/pypi/``) holds for ``name``; None
    when it has no release of it."""
    url = f"{api_url.rstrip('/')}/{canonicalize_name(name)}/json"
    # Reference: https://docs.pypi.org/api/json/
    response = http.request(
        "GET",
        url,
        what=f"the JSON API at {api_url}",
        policy=policy,
        session=session,
        headers={"Accept": "application/json"},
    )
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise StepFailed(f"The JSON API answered {response.status_code} for {url}; check the environment's index URL.")
    try:
        return parse_project(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise StepFailed(f"The JSON API's answer for {url} cannot be read ({type(exc).__name__}: {exc}).") from None


def parse_project(data: dict[str, Any]) -> PublishedProject:
    releases = {
        version: PublishedRelease(
            version=version,
            files=tuple(_file(entry) for entry in entries),
            yanked=any(bool(entry.get("yanked")) for entry in entries),
        )
        for version, entries in (data.get("releases") or {}).items()
    }
    ownership = data.get("ownership")
    roles = None
    if isinstance(ownership, dict) and isinstance(ownership.get("roles"), list):
        roles = tuple(Role(str(r["role"]), str(r["user"])) for r in ownership["roles"])
    organization = ownership.get("organization") if isinstance(ownership, dict) else None
    return PublishedProject(
        name=str(data["info"]["name"]), releases=releases, roles=roles, organization=organization or None
    )


def _file(entry: dict[str, Any]) -> PublishedFile:
    digests = entry.get("digests") or {}
    return PublishedFile(
        filename=str(entry["filename"]),
        packagetype=str(entry.get("packagetype") or ""),
        size=int(entry.get("size") or 0),
        sha256=str(digests.get("sha256") or "").lower(),
        blake2b_256=str(digests.get("blake2b_256") or "").lower(),
        upload_time=datetime.fromisoformat(str(entry["upload_time_iso_8601"])),
    )
