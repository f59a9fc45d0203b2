"""Who did something: a signed-in person, or the system (None)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

Actor = User | AnonymousUser | None


def person(actor: Actor) -> User | None:
    """The user to record, or None for the system and anonymous callers."""
    return actor if isinstance(actor, User) else None
