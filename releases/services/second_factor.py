"""Second factor: one-time-password devices (django-otp).

A person enrols an authenticator app (TOTP) and receives recovery codes
(single-use static tokens). An environment may require that approvals are
given in a session verified with one of them. An administrator resets a
lost device; enrolment and reset are audited.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.actors import Actor
from releases.models import AuditAction
from releases.services.audit import audit_record

TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"


class SecondFactorError(Exception):
    """A one-time password that does not match, or an enrolment in a bad state."""


def second_factor_enrolled(user: User) -> bool:
    return bool(TOTPDevice.objects.filter(user=user, confirmed=True).exists())


def second_factor_pending_device(user: User) -> TOTPDevice:
    """The unconfirmed TOTP device being enrolled, made on first call."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


def second_factor_confirm(user: User, token: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending device with a code from the app; return it and fresh recovery codes.

    The recovery codes are shown once; only django-otp's rows keep them.
    """
    token = token.strip().replace(" ", "")
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("-pk").first()
        if device is None:
            raise SecondFactorError("There is no enrolment in progress; start again.")
        if not token.isdigit() or not device.verify_token(token):
            raise SecondFactorError("That code does not match; check the time on your phone and try again.")
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # One authenticator per person: enrolling again replaces the old one.
        TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
        codes = _new_recovery_codes(user)
        audit_record(
            actor=user,
            action=AuditAction.SECOND_FACTOR_ENROLLED,
            target=user,
            data={"user": user.get_username(), "device": "totp", "recovery_codes": len(codes)},
        )
    return device, codes


def _new_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(settings.OTP_STATIC_RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def second_factor_reset(user: User, *, actor: Actor, reason: str = "") -> int:
    """Remove every device of ``user`` (a lost phone); they enrol again. Audited."""
    with transaction.atomic():
        devices = list(devices_for_user(user, confirmed=None))
        for device in devices:
            device.delete()
        audit_record(
            actor=actor,
            action=AuditAction.SECOND_FACTOR_RESET,
            target=user,
            data={"user": user.get_username(), "devices": len(devices), "reason": reason[:1000]},
        )
    return len(devices)
