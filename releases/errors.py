"""The errors every layer raises and catches. This module imports nothing of
the console's own: clients, steps, services and views all stand above it."""

from __future__ import annotations


class StepFailed(Exception):
    """A step failed for a reason a person must act on; do not retry."""


class TransientError(Exception):
    """A failure that may pass (connection refused, 5xx, rate limit)."""


class JobLost(Exception):
    """Another attempt owns the job now (the reaper gave it away)."""
