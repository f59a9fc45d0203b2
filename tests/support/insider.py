"""What the insider tests share: administrators whose sessions are verified
with a second factor (as the admin site and change requests ask), and the
admin's own forms posted as a person would post them."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.models import Environment
from releases.services.second_factor import second_factor_session_stamp


def totp_now(device: TOTPDevice) -> str:
    """The code an authenticator app would show now."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def verified_client(user: User) -> Client:
    """A browser session of ``user``, signed in and verified with a confirmed
    authenticator app (made here), as after the second-factor page."""
    client = Client()
    client.force_login(user)
    return verify_session(client, user)


def verify_session(client: Client, user: User) -> Client:
    """Verify ``client``'s session (signed in as ``user``) with an authenticator
    app of theirs, made here when they have none: what the admin site asks for."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    second_factor_session_stamp(session, timezone.now())
    session.save()
    return client


def admin_form(client: Client, url: str) -> dict[str, Any]:
    """The values the admin's change form shows now, as a browser would post them back."""
    page = client.get(url)
    assert page.status_code == 200, page.status_code
    form = page.context["adminform"].form
    values: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        if hasattr(value, "pk"):
            value = value.pk
        if isinstance(value, bool):
            if value:
                values[name] = "on"
            continue
        values[name] = value
    return values


def environment_admin_url(environment: Environment) -> str:
    return f"/admin/releases/environment/{environment.pk}/change/"


def user_admin_url(user: User, what: str = "change") -> str:
    return f"/admin/auth/user/{user.pk}/{what}/"


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
