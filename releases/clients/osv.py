"""The vulnerability database client: an OSV-compatible API.

Reference: https://google.github.io/osv.dev/api/
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError
from packaging.utils import canonicalize_name

from releases.clients import http
from releases.clients.http import DEFAULT_POLICY, RetryPolicy
from releases.errors import StepFailed, TransientError

TIMEOUT = (5, 60)
MAX_PAGES = 20
# The CVSS qualitative scale, as releases.models.Severity spells it.
UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL = "unknown", "low", "medium", "high", "critical"


@dataclass(frozen=True)
class Vulnerability:
    id: str
    summary: str
    aliases: list[str]
    severity: str
    fixed_versions: list[str]


def _call(
    api_url: str, method: str, path: str, payload: dict[str, Any] | None = None, *, policy: RetryPolicy
) -> dict[str, Any]:
    what = f"The vulnerability service at {api_url}"
    response = http.request(method, api_url + path, what=what, json=payload, timeout=TIMEOUT, policy=policy)
    if response.status_code != 200:
        raise StepFailed(f"The vulnerability service refused {method} {path}: {response.status_code}.")
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise TransientError(f"{what} answered something not JSON; the scan will be retried.") from None
    return body


def query_batch(api_url: str, purls: list[str], *, policy: RetryPolicy = DEFAULT_POLICY) -> list[list[str]]:
    """The ids of the known vulnerabilities of each purl, in order.

    A result with ``next_page_token`` has more ids; those queries are asked
    again with the token until no page is left.
    """
    found: list[list[str]] = [[] for _ in purls]
    pending = [(i, {"package": {"purl": purl}}) for i, purl in enumerate(purls)]
    for _ in range(MAX_PAGES):
        if not pending:
            return found
        # Reference: https://google.github.io/osv.dev/post-v1-querybatch/
        body = _call(api_url, "POST", "/v1/querybatch", {"queries": [query for _, query in pending]}, policy=policy)
        results = body.get("results", [])
        if len(results) != len(pending):
            raise TransientError("The vulnerability service answered a batch of the wrong length.")
        again = []
        for (index, query), result in zip(pending, results, strict=True):
            found[index].extend(v["id"] for v in result.get("vulns") or [] if v.get("id"))
            token = result.get("next_page_token")
            if token:
                again.append((index, {**query, "page_token": token}))
        pending = again
    raise TransientError("The vulnerability service kept paging past the limit.")


def vulnerability(api_url: str, vuln_id: str, package: str, *, policy: RetryPolicy = DEFAULT_POLICY) -> Vulnerability:
    """One vulnerability's details, with the fixed versions for ``package``."""
    # Reference: https://google.github.io/osv.dev/get-v1-vulns/
    record = _call(api_url, "GET", f"/v1/vulns/{quote(vuln_id, safe='')}", policy=policy)
    return Vulnerability(
        id=str(record.get("id", vuln_id)),
        summary=str(record.get("summary") or record.get("details", "")[:300]),
        aliases=[str(a) for a in record.get("aliases") or []],
        severity=severity_of(record),
        fixed_versions=fixed_versions(record, package),
    )


_LEVELS = {"low": LOW, "moderate": MEDIUM, "medium": MEDIUM, "high": HIGH, "critical": CRITICAL}


def severity_of(record: dict[str, Any]) -> str:
    """The record's qualitative severity: the database's own word (GitHub
    advisories give LOW/MODERATE/HIGH/CRITICAL), else the CVSS vector's."""
    word = str((record.get("database_specific") or {}).get("severity", "")).lower()
    if word in _LEVELS:
        return _LEVELS[word]
    for entry in record.get("severity") or []:
        vector = str(entry.get("score", ""))
        try:
            if entry.get("type") == "CVSS_V4":
                return _LEVELS.get(CVSS4(vector).severity.lower(), UNKNOWN)
            if entry.get("type") == "CVSS_V3":
                return _LEVELS.get(CVSS3(vector).severities()[0].lower(), UNKNOWN)
        except CVSSError:
            continue
    return UNKNOWN


def fixed_versions(record: dict[str, Any], package: str) -> list[str]:
    wanted = canonicalize_name(package)
    fixed: list[str] = []
    for affected in record.get("affected") or []:
        name = (affected.get("package") or {}).get("name", "")
        if canonicalize_name(name) != wanted:
            continue
        for version_range in affected.get("ranges") or []:
            for event in version_range.get("events") or []:
                if "fixed" in event and event["fixed"] not in fixed:
                    fixed.append(str(event["fixed"]))
    return fixed
