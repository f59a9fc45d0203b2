"""PyPI's Integrity API: a file's provenance (PEP 740), the attestations
its publisher made and PyPI checked when the file was uploaded.

The simple API names the provenance's address beside each file (its
``provenance`` key, ``data-provenance`` in HTML); an index that does not
name one may still answer at the Integrity API's address, which this
module knows too.
"""

from __future__ import annotations

from urllib.parse import quote

import requests
from packaging.utils import canonicalize_name

from releases.clients import http
from releases.errors import StepFailed

ACCEPT = "application/vnd.pypi.integrity.v1+json, application/json;q=0.9"


def provenance_url(index_url: str, project: str, version: str, filename: str) -> str | None:
    """Where a warehouse index (``https://pypi.org/simple/``) keeps a file's
    provenance; None for an index of another shape."""
    base = index_url.rstrip("/")
    if not base.endswith("/simple"):
        return None
    site = base.removesuffix("/simple")
    return f"{site}/integrity/{canonicalize_name(project)}/{quote(version)}/{quote(filename)}/provenance"


def fetch_provenance(
    url: str, *, session: requests.Session | None = None, policy: http.RetryPolicy = http.DEFAULT_POLICY
) -> bytes | None:
    """The provenance document at ``url`` (JSON); None when the file has none."""
    # Reference: https://docs.pypi.org/api/integrity/
    response = http.request(
        "GET", url, what="the index's Integrity API", policy=policy, session=session, headers={"Accept": ACCEPT}
    )
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise StepFailed(f"The Integrity API answered {response.status_code} for {url}.")
    if len(response.content) > 4 << 20:
        raise StepFailed(f"The provenance at {url} is larger than 4 MiB; it is not one.")
    return response.content
