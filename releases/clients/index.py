"""The package index's simple API: which files it holds, with their sha256.

PEP 691 JSON is asked for first; an index that answers HTML (PEP 503) is
read as well. Both give each file's sha256, which is all the console needs
to make uploads idempotent (DESIGN.md principle 4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

from packaging.utils import canonicalize_name

from releases.clients import http
from releases.clients.http import DEFAULT_POLICY, RetryPolicy
from releases.errors import StepFailed

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def project_url(index_url: str, name: str) -> str:
    return urljoin(index_url.rstrip("/") + "/", canonicalize_name(name) + "/")


def parse_project_page(body: str, content_type: str, page_url: str) -> dict[str, IndexFile]:
    """Files on a project page, by filename."""
    files: dict[str, IndexFile] = {}
    if content_type.startswith(JSON_TYPE) or content_type.startswith("application/json"):
        data = json.loads(body)
        for entry in data.get("files", []):
            sha256 = (entry.get("hashes") or {}).get("sha256", "")
            files[entry["filename"]] = IndexFile(entry["filename"], urljoin(page_url, entry["url"]), sha256.lower())
        return files
    parser = _LinkParser()
    parser.feed(body)
    for href, text in parser.links:
        url, fragment = urldefrag(urljoin(page_url, href))
        name = text or url.rsplit("/", 1)[-1]
        sha256 = fragment.split("=", 1)[1].lower() if fragment.startswith("sha256=") else ""
        files[name] = IndexFile(name, url, sha256)
    return files


def list_files(index_url: str, name: str, *, policy: RetryPolicy = DEFAULT_POLICY) -> dict[str, IndexFile]:
    """What the index holds for ``name``; empty when it has never heard of it.

    Transient failures are asked again by the shared policy; any other
    answer but 200 and 404 is permanent.
    """
    url = project_url(index_url, name)
    # Reference: https://peps.python.org/pep-0691/ and https://peps.python.org/pep-0503/
    response = http.request("GET", url, what=f"the index at {index_url}", policy=policy, headers={"Accept": ACCEPT})
    if response.status_code == 404:
        return {}
    if response.status_code >= 300:
        raise StepFailed(f"The index answered {response.status_code} for {url}; check the environment's index URL.")
    return parse_project_page(response.text, response.headers.get("Content-Type", ""), response.url)
