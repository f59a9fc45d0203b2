"""Audit for changes made outside the console's services.

Django's admin can delete a person's one-time-password devices (django-otp
registers them there). The event is written by a post_delete receiver,
inside the admin's own transaction, so the deletion and its record stand or
fall together.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.services.audit import audit_record


@receiver(post_delete, sender=TOTPDevice, dispatch_uid="audit_totp_device_removed")
@receiver(post_delete, sender=StaticDevice, dispatch_uid="audit_static_device_removed")
def audit_device_removed(sender: type[Device], instance: Device, **kwargs: Any) -> None:
    audit_record(
        actor=None,
        action="second_factor.device_removed",
        target=instance.user,
        data={"user": instance.user.get_username(), "device": instance.persistent_id, "confirmed": instance.confirmed},
    )
