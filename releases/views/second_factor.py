"""Second factor: the person's devices, enrolling an authenticator app or a
passkey, removing one, new recovery codes, and verifying the session.

Every change is decided by releases.services.second_factor; these views
only say whether this session is freshly verified (``second_factor_fresh``)
and from which address the request came.
"""

from __future__ import annotations

from base64 import b32encode
from datetime import timedelta
from typing import TypedDict

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.models import Device

from releases.client_address import client_address
from releases.services.second_factor import (
    SecondFactorChangeRefused,
    SecondFactorError,
    device_kind,
    recovery_codes_left,
    recovery_codes_replace,
    second_factor_change_blocker,
    second_factor_confirm,
    second_factor_device_remove,
    second_factor_devices,
    second_factor_enrolled,
    second_factor_pending_device,
    second_factor_present,
    second_factor_session_fresh,
    second_factor_session_stamp,
    second_factor_verification_failed,
    second_factor_verified_at,
)
from releases.views.access import viewer_required


def second_factor_fresh(request: HttpRequest) -> bool:
    """Whether this session was verified with a second factor that still
    exists, within the last SECOND_FACTOR_MAX_AGE_HOURS. What approvals
    and device changes ask for."""
    # OTPMiddleware sets is_verified() on the request's user, False once the device is gone.
    return second_factor_session_fresh(request.user, request.session)


def second_factor_login(request: HttpRequest, device: Device) -> None:
    """Mark the session verified with ``device``, from now."""
    otp_login(request, device)
    # A new session key for the raised privilege, as Django does at sign-in.
    request.session.cycle_key()
    second_factor_session_stamp(request.session, timezone.now())


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _qr_svg(data: str) -> str:
    # Reference: https://github.com/lincolnloop/python-qrcode#svg
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg: str = image.to_string(encoding="unicode")
    return svg


def _next_url(request: HttpRequest, default: str = "") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default or reverse("releases:approvals")


class Proof(TypedDict):
    """What a device change brings: a fresh session or a recovery code, and where it came from."""

    session_verified: bool
    recovery_code: str
    address: str


def _proof(request: HttpRequest) -> Proof:
    return {
        "session_verified": second_factor_fresh(request),
        "recovery_code": request.POST.get("recovery_code", ""),
        "address": client_address(request),
    }


def _context(request: HttpRequest) -> dict[str, object]:
    user = _user(request)
    verified_at = second_factor_verified_at(request.session) if second_factor_fresh(request) else None
    devices = [(device, device_kind(device)) for device in second_factor_devices(user)]
    return {
        "devices": devices,
        "has_passkey": any(kind == "passkey" for _, kind in devices),
        "has_app": any(kind == "authenticator app" for _, kind in devices),
        "recovery_codes_left": recovery_codes_left(user),
        "enrolled": second_factor_enrolled(user),
        "present": second_factor_present(user),
        "blocker": second_factor_change_blocker(user, session_verified=verified_at is not None),
        "verified_at": verified_at,
        "verified_until": verified_at + timedelta(hours=settings.SECOND_FACTOR_MAX_AGE_HOURS) if verified_at else None,
        "max_age_hours": settings.SECOND_FACTOR_MAX_AGE_HOURS,
        "here": request.get_full_path(),
        # The page that sent the person here, to go back to once done.
        "next": _next_url(request, default=reverse("releases:second_factor")),
    }


@viewer_required
@require_GET
def second_factor(request: HttpRequest) -> HttpResponse:
    return _enrol_page(request)


def _enrol_page(request: HttpRequest, *, error: str = "", status: int = 200, re_enrol: bool = False) -> HttpResponse:
    user = _user(request)
    context = _context(request)
    context["error"] = error
    context["re_enrol"] = re_enrol or request.GET.get("again") == "1"
    if not context["enrolled"] or context["re_enrol"]:
        device = second_factor_pending_device(user)
        # The QR code is made here from our own data, never from input.
        context["qr_svg"] = mark_safe(_qr_svg(device.config_url))  # noqa: S308
        # Authenticator apps take the key in base32, as in the QR code's URL.
        context["secret"] = b32encode(device.bin_key).decode().rstrip("=")
    return render(request, "releases/approvals/second_factor.html", context, status=status)


@viewer_required
@require_POST
def second_factor_confirm_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    try:
        device, codes = second_factor_confirm(user, request.POST.get("token", ""), **_proof(request))
    except SecondFactorChangeRefused as exc:
        return _enrol_page(request, error=str(exc), status=403, re_enrol=True)
    except SecondFactorError as exc:
        return _enrol_page(request, error=str(exc), status=400, re_enrol=True)
    # The person has just shown a code from this device.
    second_factor_login(request, device)
    back = _next_url(request, default=reverse("releases:second_factor"))
    if not codes:
        messages.success(request, "Your new authenticator app is set up; your recovery codes are unchanged.")
        return redirect(back)
    # Shown once, on this response only; Continue goes back to the page that asked.
    return render(request, "releases/approvals/recovery_codes.html", {"codes": codes, "next": back})


@viewer_required
@require_POST
def second_factor_remove(request: HttpRequest) -> HttpResponse:
    try:
        device = second_factor_device_remove(_user(request), request.POST.get("device", ""), **_proof(request))
    except SecondFactorChangeRefused as exc:
        return _enrol_page(request, error=str(exc), status=403)
    except SecondFactorError as exc:
        return _enrol_page(request, error=str(exc), status=400)
    messages.success(request, f"The {device_kind(device)} {device.name!r} was removed.")
    return redirect("releases:second_factor")


@viewer_required
@require_POST
def recovery_codes_new(request: HttpRequest) -> HttpResponse:
    try:
        codes = recovery_codes_replace(_user(request), **_proof(request))
    except SecondFactorChangeRefused as exc:
        return _enrol_page(request, error=str(exc), status=403)
    back = _next_url(request, default=reverse("releases:second_factor"))
    return render(request, "releases/approvals/recovery_codes.html", {"codes": codes, "next": back})


@viewer_required
@require_GET
def passkey_enrol(request: HttpRequest) -> HttpResponse:
    """The page whose button registers a passkey (django-otp-webauthn's script
    calls the JSON views in releases/views/passkeys.py)."""
    return render(request, "releases/approvals/passkey.html", _context(request))


@viewer_required
@require_http_methods(["GET", "POST"])
def second_factor_verify(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    error = ""
    if request.method == "POST":
        token = request.POST.get("token", "").strip().replace(" ", "")
        device = match_token(user, token) if token else None
        if device is not None:
            second_factor_login(request, device)
            return redirect(_next_url(request))
        second_factor_verification_failed(user, address=client_address(request), method="code")
        # The same answer whatever the person has (an app, recovery codes,
        # nothing) and whether django-otp is throttling their devices.
        error = "That code does not match. Use a current code from your app, or an unused recovery code."
    context = _context(request)
    context.update({"error": error, "next": _next_url(request)})
    return render(request, "releases/approvals/second_factor_verify.html", context, status=400 if error else 200)
