"""The package index's simple API: which files it holds for a project.

PEP 691 JSON is asked for first, PEP 503 HTML accepted as well (PyPI's HTML
index is frozen, PEP 833; devpi and other indexes may answer either). The
request goes through the shared retry policy; the page is read by the
``pypi-simple`` library, which knows both forms and their later additions
(yanked, core metadata, PEP 740 provenance).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from packaging.utils import canonicalize_name
from pypi_simple import (
    ACCEPT_JSON_PREFERRED,
    DistributionPackage,
    IndexPage,
    ProjectPage,
    UnsupportedContentTypeError,
)
from pypi_simple.errors import UnsupportedRepoVersionError

from releases.clients import http
from releases.errors import StepFailed


@dataclass(frozen=True)
class IndexFile:
    """One file the index lists."""

    filename: str
    url: str
    sha256: str  # lower case; empty when the index gives none
    yanked: bool = False
    yanked_reason: str | None = None
    has_core_metadata: bool = False  # PEP 658/714: METADATA served beside the file
    provenance_url: str | None = None  # PEP 740
    requires_python: str | None = None


@dataclass(frozen=True)
class IndexProject:
    """A project page: the project exists on the index, with these files."""

    name: str
    files: dict[str, IndexFile]


def project_url(index_url: str, name: str) -> str:
    """The project page's address: the index URL and the PEP 503 normalized name."""
    return index_url.rstrip("/") + "/" + canonicalize_name(name) + "/"


def fetch_project(
    index_url: str,
    name: str,
    *,
    session: requests.Session | None = None,
    policy: http.RetryPolicy = http.DEFAULT_POLICY,
) -> IndexProject | None:
    """The index's page for ``name``; None when the index has never heard of it.

    Transient failures (connection errors, 5xx, 429) are asked again under
    the shared policy and end in TransientError; any other refusal, or a page
    that is neither PEP 691 JSON nor HTML, is StepFailed with a sentence.
    """
    url = project_url(index_url, name)
    # Reference: https://peps.python.org/pep-0691/ and https://peps.python.org/pep-0503/
    response = http.request(
        "GET",
        url,
        what=f"the index at {index_url}",
        policy=policy,
        session=session,
        headers={"Accept": ACCEPT_JSON_PREFERRED},
    )
    if response.status_code == 404:
        return None
    if response.status_code >= 300:
        raise StepFailed(f"The index answered {response.status_code} for {url}; check the environment's index URL.")
    try:
        page = ProjectPage.from_response(response, name)
    except UnsupportedContentTypeError:
        content_type = response.headers.get("Content-Type", "no content type")
        raise StepFailed(
            f"The index at {index_url} answered {url} with {content_type}, neither the simple API's JSON (PEP 691) "
            "nor HTML (PEP 503); check the environment's index URL."
        ) from None
    except UnsupportedRepoVersionError as exc:
        raise StepFailed(
            f"The index at {index_url} speaks a simple API version the console cannot read: {exc}."
        ) from None
    except ValueError as exc:
        raise StepFailed(f"The index at {index_url} answered {url} with a page that cannot be read: {exc}.") from None
    files = {package.filename: _index_file(package) for package in page.packages}
    return IndexProject(name=page.project, files=files)


def project_names(
    index_url: str, *, session: requests.Session | None = None, policy: http.RetryPolicy = http.DEFAULT_POLICY
) -> frozenset[str]:
    """Every project name the index lists (its root page), for the names a
    new project may not come too close to. PyPI's root lists every project,
    several megabytes: ask for it only before a project's first upload."""
    url = index_url.rstrip("/") + "/"
    # Reference: https://peps.python.org/pep-0691/#project-list
    response = http.request(
        "GET",
        url,
        what=f"the index at {index_url}",
        policy=policy,
        session=session,
        headers={"Accept": ACCEPT_JSON_PREFERRED},
    )
    if response.status_code >= 300:
        raise StepFailed(f"The index answered {response.status_code} for {url}; check the environment's index URL.")
    try:
        return frozenset(IndexPage.from_response(response).projects)
    except (UnsupportedContentTypeError, ValueError) as exc:
        raise StepFailed(
            f"The index at {index_url} answered its project list with a page that cannot be read: {exc}."
        ) from None


def list_files(
    index_url: str,
    name: str,
    *,
    session: requests.Session | None = None,
    policy: http.RetryPolicy = http.DEFAULT_POLICY,
) -> dict[str, IndexFile]:
    """What the index holds for ``name``, by filename; empty when it has never heard of it."""
    project = fetch_project(index_url, name, session=session, policy=policy)
    return {} if project is None else project.files


def _index_file(package: DistributionPackage) -> IndexFile:
    return IndexFile(
        filename=package.filename,
        url=package.url,
        sha256=(package.digests.get("sha256") or "").lower(),
        yanked=package.is_yanked,
        yanked_reason=package.yanked_reason or None,
        has_core_metadata=bool(package.has_metadata),
        provenance_url=package.provenance_url,
        requires_python=package.requires_python,
    )
