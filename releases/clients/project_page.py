"""An index's project page for one version (``https://pypi.org/project/NAME/VERSION/``)."""

from __future__ import annotations

from dataclasses import dataclass

from releases.clients import http
from releases.clients.http import RetryPolicy
from releases.errors import TransientError


@dataclass(frozen=True)
class PageAnswer:
    ok: bool
    detail: str


def project_page(url: str, *, policy: RetryPolicy) -> PageAnswer:
    """GET the page; a 404 is waited out by ``policy`` too (a CDN may not
    have the new version yet)."""
    waiting = RetryPolicy(
        attempts=policy.attempts, backoff=policy.backoff, max_wait=policy.max_wait, also=frozenset({404})
    )
    try:
        response = http.request("GET", url, what=url, policy=waiting, allow_redirects=True)
    except TransientError as exc:
        return PageAnswer(False, str(exc))
    if response.status_code == 200:
        return PageAnswer(True, f"{url} answered 200")
    return PageAnswer(False, f"{url} answered {response.status_code}")
