"""The download statistics client: a pypistats.org-compatible JSON API.

Reference: https://pypistats.org/api/
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import requests
from django.conf import settings
from packaging.utils import canonicalize_name

from releases.errors import StepFailed, TransientError

TIMEOUT = (5, 30)


@dataclass(frozen=True)
class DailyCount:
    day: date
    label: str
    downloads: int


def daily_counts(package: str, endpoint: str) -> list[DailyCount]:
    """``endpoint`` is ``overall`` (without mirrors) or ``python_minor``."""
    url = f"{settings.PYPISTATS_API_URL}/packages/{canonicalize_name(package)}/{endpoint}"
    params = {"mirrors": "false"} if endpoint == "overall" else {}
    try:
        # Reference: https://pypistats.org/api/ ("/api/packages/<package>/overall", ".../python_minor")
        response = requests.get(url, params=params, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise TransientError(
            f"pypistats at {settings.PYPISTATS_API_URL} could not be reached ({type(exc).__name__})"
        ) from None
    if response.status_code == 404:
        return []
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"pypistats answered {response.status_code} for {url}")
    if response.status_code != 200:
        raise StepFailed(f"pypistats refused {url}: {response.status_code}")
    counts = []
    for row in response.json().get("data", []):
        try:
            counts.append(DailyCount(date.fromisoformat(row["date"]), str(row["category"]), int(row["downloads"])))
        except (KeyError, TypeError, ValueError):
            continue
    return counts
