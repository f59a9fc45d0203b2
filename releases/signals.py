"""Signal handlers: failed sign-ins go into the audit trail; role groups follow the code."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from releases.services.audit import audit_record
from releases.services.roles import roles_sync


@receiver(user_login_failed, dispatch_uid="releases.audit_login_failed")
def audit_login_failed(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """Record each failed sign-in (django-axes counts them and locks out)."""
    username = str(credentials.get("username", ""))[:150]
    target = User.objects.filter(username=username).first() or User(username=username)
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    audit_record(
        actor=None,
        actor_name="anonymous",
        action="auth.login_failed",
        target=target,
        data={"username": username, "address": address},
    )


def sync_roles_after_migrate(sender: Any, **_: Any) -> None:
    roles_sync()
