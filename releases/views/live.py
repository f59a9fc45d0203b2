"""How the live parts of pages are polled (htmx, with console.js)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Poll:
    """A tick every ``every`` seconds; an answer that changes nothing
    doubles the wait before the next request, up to ``most`` seconds, and a
    change brings it back to one tick. A hidden tab waits ``most``."""

    every: int
    most: int

    @property
    def trigger(self) -> str:
        # Without console.js (consoleLive), every tick asks.
        return f"every {self.every}s [!window.consoleLive || consoleLive.due(this)]"


# A release page while a job runs: every second while its log moves (the
# end of a push shows within a second of it).
LIVE_POLL = Poll(every=1, most=8)
# A push that waits for someone's approval.
WAITING_POLL = Poll(every=10, most=30)
# The approval page while its push moves.
APPROVAL_POLL = Poll(every=3, most=12)
