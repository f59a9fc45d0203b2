"""Signal handlers: failed sign-ins and device removals go into the audit
trail (inside the transaction that made the change); role groups follow
the code after each migrate."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.http import HttpRequest
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.models import AuditAction
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
        action=AuditAction.LOGIN_FAILED,
        target=target,
        data={"username": username, "address": address},
    )


def sync_roles_after_migrate(sender: Any, **_: Any) -> None:
    roles_sync()


@receiver(post_delete, sender=TOTPDevice, dispatch_uid="audit_totp_device_removed")
@receiver(post_delete, sender=StaticDevice, dispatch_uid="audit_static_device_removed")
def audit_device_removed(sender: type[Device], instance: Device, **kwargs: Any) -> None:
    """Django's admin can delete a person's one-time-password devices; the
    deletion and its record stand or fall together."""
    audit_record(
        actor=None,
        action=AuditAction.SECOND_FACTOR_DEVICE_REMOVED,
        target=instance.user,
        data={"user": instance.user.get_username(), "device": instance.persistent_id, "confirmed": instance.confirmed},
    )
