"""Second factor: authenticator apps (TOTP), passkeys (WebAuthn) and recovery
codes, all django-otp devices.

A person enrols an authenticator app or a passkey, and receives recovery
codes (single-use static tokens). An environment may require that approvals
are given in a session verified with one of them in the last
SECOND_FACTOR_MAX_AGE_HOURS.

A password alone never changes a second factor: once a person has one,
adding, replacing or removing a device, or making new recovery codes, needs
a session verified within that time or an unused recovery code (which the
change uses up). Only the first enrolment needs nothing but the password.
Every change, and every refusal, is audited with the devices before and
after, and the person is mailed with when and from which address. An
administrator resets a lost device (``otp_reset``).
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from releases.actors import Actor
from releases.models import AuditAction
from releases.services.audit import audit_record
from releases.services.sign_in import SECOND_FACTOR_FAILED, failure_report

logger = logging.getLogger(__name__)

TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
PASSKEY_NAME = "Passkey"
VERIFIED_AT_SESSION_KEY = "second_factor_verified_at"
# Audit actions (with SECOND_FACTOR_FAILED in releases.services.sign_in).
ENROLLED = AuditAction.SECOND_FACTOR_ENROLLED
DEVICE_REMOVED = AuditAction.SECOND_FACTOR_DEVICE_REMOVED
RECOVERY_CODES_REPLACED = AuditAction.SECOND_FACTOR_RECOVERY_CODES_REPLACED
CHANGE_REFUSED = AuditAction.SECOND_FACTOR_CHANGE_REFUSED
RESET = AuditAction.SECOND_FACTOR_RESET
# The devices that verify a session, besides recovery codes.
FACTOR_MODELS: tuple[type[Device], ...] = (TOTPDevice, WebAuthnCredential)
KINDS = {TOTPDevice: "authenticator app", WebAuthnCredential: "passkey", StaticDevice: "recovery codes"}

# Set while a service below changes devices itself, so that the model
# signals (which catch changes made in the admin) do not record them twice.
_changing_here: ContextVar[bool] = ContextVar("second_factor_changing_here", default=False)


class SecondFactorError(Exception):
    """A one-time password that does not match, or an enrolment in a bad state."""


class SecondFactorChangeRefused(SecondFactorError):
    """A device change without the proof it needs; the refusal was audited."""


def device_kind(device: Device) -> str:
    return KINDS.get(type(device), type(device).__name__.lower())


def second_factor_devices(user: User) -> list[Device]:
    """The person's confirmed authenticator apps and passkeys, oldest first."""
    found: list[Device] = []
    for model in FACTOR_MODELS:
        found.extend(model.objects.filter(user=user, confirmed=True).order_by("pk"))
    return found


def recovery_codes_left(user: User) -> int:
    return int(StaticToken.objects.filter(device__user=user, device__confirmed=True).count())


def second_factor_enrolled(user: User) -> bool:
    """Whether the person has an authenticator app or a passkey."""
    return any(model.objects.filter(user=user, confirmed=True).exists() for model in FACTOR_MODELS)


def second_factor_present(user: User) -> bool:
    """Whether the person has any second factor, recovery codes included."""
    return second_factor_enrolled(user) or recovery_codes_left(user) > 0


def second_factor_verified_at(session: Mapping[str, Any], *, now: datetime | None = None) -> datetime | None:
    """When this session was verified with a second factor, or None when it
    was not, or longer ago than SECOND_FACTOR_MAX_AGE_HOURS (or the stamp is
    not one this console wrote)."""
    raw = session.get(VERIFIED_AT_SESSION_KEY)
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    now = now or timezone.now()
    if at > now or now - at > timedelta(hours=settings.SECOND_FACTOR_MAX_AGE_HOURS):
        return None
    return at


def second_factor_session_fresh(user: object, session: Mapping[str, Any]) -> bool:
    """Whether a session was verified with a second factor that still exists
    (django-otp's ``is_verified``), within SECOND_FACTOR_MAX_AGE_HOURS: what
    approvals, device changes, change-request decisions and the admin site ask for."""
    verified = bool(getattr(user, "is_verified", lambda: False)())
    return verified and second_factor_verified_at(session) is not None


def second_factor_session_stamp(session: MutableMapping[str, Any], at: datetime) -> None:
    session[VERIFIED_AT_SESSION_KEY] = at.isoformat()


def second_factor_change_blocker(user: User, *, session_verified: bool) -> str | None:
    """Why a device change needs a recovery code now, or None when it does not.

    The enrolment pages show a recovery-code field when this is not None;
    every change below calls it again before it writes anything.
    """
    if session_verified or not second_factor_present(user):
        return None
    return (
        "You already have a second factor: adding, replacing or removing one needs this session verified "
        f"with it in the last {settings.SECOND_FACTOR_MAX_AGE_HOURS} hours, or an unused recovery code."
    )


def second_factor_pending_device(user: User) -> TOTPDevice:
    """The unconfirmed TOTP device being enrolled, made on first call."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


def second_factor_confirm(
    user: User, token: str, *, session_verified: bool, recovery_code: str = "", address: str = ""
) -> tuple[TOTPDevice, list[str]]:
    """Confirm the pending authenticator app with a code from it.

    1. Lock the person's row (changes to one person's devices queue) and
       check the code against the pending device.
    2. Check the change is allowed: a first second factor, a verified
       session, or an unused recovery code (used up here). A refusal is
       audited (committed) and raised as SecondFactorChangeRefused.
    3. Confirm the device, remove the app it replaces (one per person),
       audit, and mail the person once the change commits.
    4. Return the device and, when the person had none left, fresh
       recovery codes (shown once; only django-otp's rows keep them).
    """
    token = token.strip().replace(" ", "")
    codes: list[str] = []
    with transaction.atomic(), _recorded_here():
        _lock(user)
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("-pk").first()
        if device is None:
            raise SecondFactorError("There is no enrolment in progress; start again.")
        if not token.isdigit() or not device.verify_token(token):
            raise SecondFactorError("That code does not match; check the time on your phone and try again.")
        before = _inventory(user)
        how = _authorise(user, session_verified=session_verified, recovery_code=recovery_code, address=address)
        if how is None:
            _refused(user, change="add authenticator app", before=before, address=address)
        else:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            for old in TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk):
                _remove(user, old, how=how, address=address)
            if recovery_codes_left(user) == 0:
                codes = _new_recovery_codes(user)
            _changed(user, ENROLLED, device, before=before, how=how, address=address)
    if how is None:
        raise SecondFactorChangeRefused(_blocked_message(user))
    return device, codes


def passkey_registration_check(user: User, *, session_verified: bool, address: str = "") -> None:
    """Refuse (audited, then SecondFactorChangeRefused) to start adding a
    passkey that ``passkey_add`` would refuse."""
    blocker = second_factor_change_blocker(user, session_verified=session_verified)
    if blocker is None:
        return
    with transaction.atomic():
        _refused(user, change="add passkey", before=_inventory(user), address=address)
    raise SecondFactorChangeRefused(blocker)


def passkey_add(user: User, register: Callable[[], Device], *, session_verified: bool, address: str = "") -> Device:
    """Add a passkey: ``register`` checks the browser's attestation and
    saves the credential (django-otp-webauthn), once the change is allowed.

    The same rule, audit and mail as ``second_factor_confirm``. Recovery
    codes are not made here (the browser's script shows no page); the
    second-factor page asks for them while the person has none.
    """
    with transaction.atomic(), _recorded_here():
        _lock(user)
        before = _inventory(user)
        how = _authorise(user, session_verified=session_verified, recovery_code="", address=address)
        if how is not None:
            device = register()
            if not device.name:
                device.name = f"{PASSKEY_NAME} added {timezone.now():%Y-%m-%d %H:%M} UTC"
                device.save(update_fields=["name"])
            _changed(user, ENROLLED, device, before=before, how=how, address=address)
            return device
        _refused(user, change="add passkey", before=before, address=address)
    raise SecondFactorChangeRefused(_blocked_message(user))


def second_factor_device_remove(
    user: User, device_id: str, *, session_verified: bool, recovery_code: str = "", address: str = ""
) -> Device:
    """Remove one of the person's authenticator apps or passkeys (by its
    persistent id); the same rule, audit and mail as adding one."""
    with transaction.atomic(), _recorded_here():
        _lock(user)
        device = next((d for d in second_factor_devices(user) if d.persistent_id == device_id), None)
        if device is None:
            raise SecondFactorError("That device is not one of yours, or it was already removed.")
        before = _inventory(user)
        how = _authorise(user, session_verified=session_verified, recovery_code=recovery_code, address=address)
        if how is None:
            _refused(user, change=f"remove {device_kind(device)}", before=before, address=address)
        else:
            _remove(user, device, how=how, address=address, before=before)
    if how is None:
        raise SecondFactorChangeRefused(_blocked_message(user))
    return device


def recovery_codes_replace(
    user: User, *, session_verified: bool, recovery_code: str = "", address: str = ""
) -> list[str]:
    """Make new recovery codes; the old ones stop working. Same rule, audit and mail.

    Only beside an authenticator app or a passkey: codes alone are no second factor.
    """
    with transaction.atomic(), _recorded_here():
        _lock(user)
        if not second_factor_enrolled(user):
            raise SecondFactorError("Set up an authenticator app or a passkey first; recovery codes stand in for one.")
        before = _inventory(user)
        how = _authorise(user, session_verified=session_verified, recovery_code=recovery_code, address=address)
        if how is None:
            _refused(user, change="make new recovery codes", before=before, address=address)
            codes: list[str] = []
        else:
            codes = _new_recovery_codes(user)
            static = StaticDevice.objects.get(user=user)
            _changed(user, RECOVERY_CODES_REPLACED, static, before=before, how=how, address=address)
    if how is None:
        raise SecondFactorChangeRefused(_blocked_message(user))
    return codes


def second_factor_verification_failed(user: User, *, address: str, method: str) -> None:
    """A code or passkey that did not verify the session (audited, rate-limited)."""
    failure_report(
        SECOND_FACTOR_FAILED, username=user.get_username(), address=address, actor=user, data={"method": method}
    )


def second_factor_reset(user: User, *, actor: Actor, reason: str = "") -> int:
    """Remove every device of ``user`` (a lost phone); they enrol again. Audited, and mailed."""
    with transaction.atomic(), _recorded_here():
        devices = list(devices_for_user(user, confirmed=None))
        for device in devices:
            described = _device_data(user, device)
            device.delete()
            audit_record(
                actor=actor,
                action=DEVICE_REMOVED,
                target=user,
                data={**described, "confirmed": device.confirmed, "reason": reason[:1000]},
            )
        audit_record(
            actor=actor,
            action=RESET,
            target=user,
            data={"user": user.get_username(), "devices": len(devices), "reason": reason[:1000]},
        )
        if devices:
            _mail_on_commit(user, "every second factor was removed by an administrator", address="")
    return len(devices)


def second_factor_changed_elsewhere(device: Device, *, added: bool) -> None:
    """A device row added or deleted outside the services above (the admin,
    a shell): audited in the same transaction; a confirmed device's change
    is mailed after it."""
    if _changing_here.get() or (added and not device.confirmed):
        return
    user = device.user
    audit_record(
        actor=None,
        action=ENROLLED if added else DEVICE_REMOVED,
        target=user,
        data={**_device_data(user, device), "confirmed": device.confirmed, "outside_the_console_pages": True},
    )
    if device.confirmed:
        verb = "added" if added else "removed"
        _mail_on_commit(user, f"the {device_kind(device)} {device.name!r} was {verb} by an administrator", address="")


@contextmanager
def _recorded_here() -> Iterator[None]:
    token = _changing_here.set(True)
    try:
        yield
    finally:
        _changing_here.reset(token)


def _lock(user: User) -> None:
    User.objects.select_for_update().filter(pk=user.pk).first()


def _authorise(user: User, *, session_verified: bool, recovery_code: str, address: str) -> str | None:
    """How the change is allowed ("first second factor", "verified session",
    "recovery code"), or None. A recovery code that matches is used up; one
    that does not counts as a failed verification."""
    if second_factor_change_blocker(user, session_verified=session_verified) is None:
        return "verified session" if session_verified else "first second factor"
    code = recovery_code.strip().replace(" ", "")
    if not code:
        return None
    static = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
    if static is not None and static.verify_token(code):
        return "recovery code"
    second_factor_verification_failed(user, address=address, method="recovery code")
    return None


def _blocked_message(user: User) -> str:
    return second_factor_change_blocker(user, session_verified=False) or "This change needs a second factor."


def _inventory(user: User) -> dict[str, object]:
    return {
        "devices": [f"{device_kind(d)}: {d.name} ({d.persistent_id})" for d in second_factor_devices(user)],
        "recovery_codes": recovery_codes_left(user),
    }


def _device_data(user: User, device: Device) -> dict[str, object]:
    return {
        "user": user.get_username(),
        "device": device.persistent_id,
        "kind": device_kind(device),
        "name": device.name,
    }


def _refused(user: User, *, change: str, before: dict[str, object], address: str) -> None:
    audit_record(
        actor=user,
        action=CHANGE_REFUSED,
        target=user,
        data={"user": user.get_username(), "change": change, "devices": before, "address": address},
    )


def _changed(
    user: User, action: AuditAction, device: Device, *, before: dict[str, object], how: str, address: str
) -> None:
    audit_record(
        actor=user,
        action=action,
        target=user,
        data={
            **_device_data(user, device),
            "authorised_by": how,
            "address": address,
            "before": before,
            "after": _inventory(user),
        },
    )
    if action == RECOVERY_CODES_REPLACED:
        what = "new recovery codes were made (the old ones no longer work)"
    else:
        what = f"a {device_kind(device)} {device.name!r} was added"
    _mail_on_commit(user, what, address=address)


def _remove(user: User, device: Device, *, how: str, address: str, before: dict[str, object] | None = None) -> None:
    before = before if before is not None else _inventory(user)
    described = _device_data(user, device)  # before delete() clears the id
    device.delete()
    audit_record(
        actor=user,
        action=DEVICE_REMOVED,
        target=user,
        data={
            **described,
            "authorised_by": how,
            "address": address,
            "before": before,
            "after": _inventory(user),
        },
    )
    _mail_on_commit(user, f"the {device_kind(device)} {device.name!r} was removed", address=address)


def _new_recovery_codes(user: User) -> list[str]:
    # The device is kept (only its codes change), so that a session verified
    # with a recovery code stays verified.
    device = StaticDevice.objects.filter(user=user).order_by("pk").first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    if not device.confirmed:
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(settings.OTP_STATIC_RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _mail_on_commit(user: User, what: str, *, address: str) -> None:
    """Tell the person, once the change is committed, what changed, when and from where."""
    at = timezone.now()
    transaction.on_commit(lambda: _send_change_mail(user.pk, what, at, address))


def _send_change_mail(user_id: int, what: str, at: datetime, address: str) -> None:
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.email:
        logger.warning("second factor of user %s changed (%s); no email address to tell them", user_id, what)
        return
    where = f"from the address {address}" if address else "outside the console's pages"
    body = (
        f"On the release console, for your account {user.get_username()}, {what}, "
        f"at {at:%Y-%m-%d %H:%M:%S} UTC, {where}.\n\n"
        "If this was you, there is nothing to do.\n"
        "If it was not, someone else knows your password: change it, and ask an administrator to remove "
        "the devices you do not recognise and to check the audit trail.\n"
        f"\nYour second factor now: {_describe(user)}.\n"
    )
    try:
        send_mail(f"Your second factor changed: {what[:80]}", body, None, [user.email])
    except (OSError, smtplib.SMTPException):
        # The change stands and is in the audit trail; the mail is a warning, not a gate.
        logger.warning("could not mail user %s about a second-factor change", user_id, exc_info=True)


def _describe(user: User) -> str:
    devices = [f"{device_kind(d)} {d.name!r}" for d in second_factor_devices(user)]
    devices.append(f"{recovery_codes_left(user)} recovery code(s)")
    return ", ".join(devices)
