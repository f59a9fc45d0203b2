"""Who did something: a signed-in person, the service account, or the system (None)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User

Actor = User | AnonymousUser | None


def person(actor: Actor) -> User | None:
    """The user to record, or None for the system and anonymous callers."""
    return actor if isinstance(actor, User) else None


def is_service_account(user: Actor) -> bool:
    """Whether ``user`` is the account webhooks act as (CONSOLE_SERVICE_ACCOUNT),
    which requests and never decides."""
    return isinstance(user, User) and user.get_username() == settings.CONSOLE_SERVICE_ACCOUNT
