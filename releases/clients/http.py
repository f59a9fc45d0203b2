"""The one retry policy of every HTTP client (STYLE.md rule 4).

Transient, and retried with exponential backoff up to a cap: connection
errors and timeouts, 5xx answers, and 429 (waiting what ``Retry-After``
asks, within the cap). Anything else is the caller's to judge: a 404 may be
an answer ("never heard of it"), a 401 a permanent error to explain.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from releases.errors import TransientError


def is_transient_status(status: int) -> bool:
    """A status worth asking again for: the server's trouble, or a rate limit."""
    return status >= 500 or status == 429


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to ask again."""

    attempts: int = 4
    backoff: float = 0.5  # the first wait; each next one doubles
    max_wait: float = 30.0  # no single wait is longer, Retry-After included
    # Statuses that mean "not yet" for this caller alone: a project page
    # answers 404 until the index's cache has the new version.
    also: frozenset[int] = frozenset()

    def wait(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after.strip()), self.max_wait)
        return min(self.backoff * 2.0 ** (attempt - 1), self.max_wait)


DEFAULT_POLICY = RetryPolicy()


def request(
    method: str,
    url: str,
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    timeout: tuple[float, float] = (5, 30),
    session: requests.Session | None = None,
    headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """Send one request, asking again while the failure is transient.

    ``what`` names the remote system in the error a person reads ("the
    index at https://test.pypi.org/simple/"). Returns the first answer that
    is not transient, whatever its status (or, for the caller's own "not
    yet" statuses, the last one once the attempts are spent); raises
    TransientError once the attempts are spent on failures.
    """
    sender = session or requests
    error = ""
    waited_out: requests.Response | None = None
    for attempt in range(1, policy.attempts + 1):
        retry_after: str | None = None
        waited_out = None
        try:
            response = sender.request(method, url, headers=dict(headers or {}), timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            error = f"{what} could not be reached ({type(exc).__name__})"
        else:
            if response.status_code in policy.also:
                waited_out = response
            elif not is_transient_status(response.status_code):
                return response
            error = f"{what} answered {response.status_code} for {url}"
            retry_after = response.headers.get("Retry-After")
        if attempt < policy.attempts:
            time.sleep(policy.wait(attempt, retry_after))
    if waited_out is not None:
        return waited_out
    raise TransientError(f"{error}, {policy.attempts} times; try again later.")
