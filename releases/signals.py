"""Signal handlers: sign-ins and second-factor devices changed outside the
console's pages go into the audit trail (inside the transaction that made
the change); role groups follow the code after each migrate."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from releases.client_address import client_address
from releases.services.roles import roles_sync
from releases.services.second_factor import second_factor_changed_elsewhere
from releases.services.sign_in import sign_in_failed, sign_in_succeeded


@receiver(user_login_failed, dispatch_uid="releases.audit_login_failed")
def audit_login_failed(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """Record failed sign-ins, at most one event a minute per username and
    address (django-axes counts every one and locks out)."""
    username = str(credentials.get("username", ""))
    sign_in_failed(username, client_address(request) if request is not None else "")


@receiver(user_logged_in, dispatch_uid="releases.sign_in_succeeded")
def clear_own_failures(sender: object, request: HttpRequest | None, user: Any, **_: Any) -> None:
    sign_in_succeeded(user.get_username(), client_address(request) if request is not None else "")


def sync_roles_after_migrate(sender: Any, **_: Any) -> None:
    roles_sync()


@receiver(post_delete, sender=TOTPDevice, dispatch_uid="audit_totp_device_removed")
@receiver(post_delete, sender=StaticDevice, dispatch_uid="audit_static_device_removed")
@receiver(post_delete, sender=WebAuthnCredential, dispatch_uid="audit_passkey_removed")
def audit_device_removed(sender: type[Device], instance: Device, **kwargs: Any) -> None:
    """Django's admin can delete a person's devices; the deletion and its
    record stand or fall together."""
    second_factor_changed_elsewhere(instance, added=False)


@receiver(post_save, sender=TOTPDevice, dispatch_uid="audit_totp_device_added")
@receiver(post_save, sender=StaticDevice, dispatch_uid="audit_static_device_added")
@receiver(post_save, sender=WebAuthnCredential, dispatch_uid="audit_passkey_added")
def audit_device_added(sender: type[Device], instance: Device, created: bool, **kwargs: Any) -> None:
    """Likewise for a device added in the admin."""
    if created:
        second_factor_changed_elsewhere(instance, added=True)
