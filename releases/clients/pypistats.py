"""The download statistics client: a pypistats.org-compatible JSON API.

Reference: https://pypistats.org/api/
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from packaging.utils import canonicalize_name

from releases.clients import http
from releases.clients.http import DEFAULT_POLICY, RetryPolicy
from releases.errors import StepFailed

TIMEOUT = (5, 30)


@dataclass(frozen=True)
class DailyCount:
    day: date
    label: str
    downloads: int


def daily_counts(
    api_url: str, package: str, endpoint: str, *, policy: RetryPolicy = DEFAULT_POLICY
) -> list[DailyCount]:
    """``endpoint`` is ``overall`` (without mirrors) or ``python_minor``."""
    url = f"{api_url}/packages/{canonicalize_name(package)}/{endpoint}"
    params = {"mirrors": "false"} if endpoint == "overall" else {}
    # Reference: https://pypistats.org/api/ ("/api/packages/<package>/overall", ".../python_minor")
    response = http.request("GET", url, what=f"pypistats at {api_url}", params=params, timeout=TIMEOUT, policy=policy)
    if response.status_code == 404:
        return []
    if response.status_code != 200:
        raise StepFailed(f"pypistats refused {url}: {response.status_code}")
    counts = []
    for row in response.json().get("data", []):
        try:
            counts.append(DailyCount(date.fromisoformat(row["date"]), str(row["category"]), int(row["downloads"])))
        except (KeyError, TypeError, ValueError):
            continue
    return counts
