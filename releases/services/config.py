"""What the clients and steps are told, from the console's settings: the
layers below the services read no settings of their own."""

from __future__ import annotations

from django.conf import settings

from releases.clients.http import RetryPolicy


def retry_policy() -> RetryPolicy:
    """How every HTTP client asks again after a transient failure."""
    return RetryPolicy(
        attempts=settings.HTTP_RETRY_ATTEMPTS,
        backoff=settings.HTTP_RETRY_BACKOFF,
        max_wait=float(settings.HTTP_RETRY_MAX_WAIT),
    )
