"""Signal handlers: sign-ins, people, their roles and second-factor devices
changed outside the console's pages go into the audit trail (inside the
transaction that made the change); role groups follow the code after each
migrate."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from releases.client_address import client_address
from releases.services.people_audit import (
    direct_permissions,
    group_members_changed,
    person_after_save,
    person_before_save,
    person_deleted,
    person_groups_changed,
    person_groups_changing,
    person_permissions_changed,
)
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


@receiver(pre_save, sender=User, dispatch_uid="audit_person_saving")
def audit_person_saving(sender: type[User], instance: User, update_fields: Any = None, **kwargs: Any) -> None:
    person_before_save(instance, update_fields)


@receiver(post_save, sender=User, dispatch_uid="audit_person_saved")
def audit_person_saved(sender: type[User], instance: User, created: bool, **kwargs: Any) -> None:
    """Whatever path saved a person (the admin, createsuperuser, a shell):
    the values before and after, in the same transaction."""
    person_after_save(instance, created=created)


@receiver(m2m_changed, sender=User.groups.through, dispatch_uid="audit_person_roles")
def audit_person_roles(
    sender: object, instance: User | Group, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if isinstance(instance, User):
        if action.startswith("pre_"):
            person_groups_changing(instance)
        elif action.startswith("post_"):
            person_groups_changed(instance, added=action == "post_add")
    elif action == "pre_clear":
        instance._audit_members = list(instance.user_set.values_list("pk", flat=True))  # type: ignore[attr-defined]
    elif action in ("post_add", "post_remove", "post_clear"):
        members = pk_set if action != "post_clear" else getattr(instance, "_audit_members", [])
        group_members_changed(instance, members or [], added=action == "post_add")


@receiver(m2m_changed, sender=User.user_permissions.through, dispatch_uid="audit_person_permissions")
def audit_person_permissions(sender: object, instance: object, action: str, **kwargs: Any) -> None:
    if not isinstance(instance, User):
        return
    if action.startswith("pre_"):
        instance._audit_permissions = direct_permissions(instance)  # type: ignore[attr-defined]
    elif action.startswith("post_"):
        person_permissions_changed(instance, getattr(instance, "_audit_permissions", []))


@receiver(post_delete, sender=User, dispatch_uid="audit_person_deleted")
def audit_person_deleted(sender: type[User], instance: User, **kwargs: Any) -> None:
    person_deleted(instance)
