"""Second factor: enrol an authenticator app, verify the session with it."""

from __future__ import annotations

from base64 import b32encode

import qrcode
import qrcode.image.svg
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login
from django_otp import match_token

from releases.models import AuditAction
from releases.services.audit import audit_record
from releases.services.second_factor import (
    SecondFactorError,
    second_factor_confirm,
    second_factor_enrolled,
    second_factor_pending_device,
)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _qr_svg(data: str) -> str:
    # Reference: https://github.com/lincolnloop/python-qrcode#svg
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg: str = image.to_string(encoding="unicode")
    return svg


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse("releases:approvals")


@login_required
@require_GET
def second_factor(request: HttpRequest) -> HttpResponse:
    return _enrol_page(request)


def _enrol_page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    user = _user(request)
    enrolled = second_factor_enrolled(user)
    context: dict[str, object] = {"enrolled": enrolled, "error": error, "re_enrol": request.GET.get("again") == "1"}
    if not enrolled or context["re_enrol"]:
        device = second_factor_pending_device(user)
        # The QR code is made here from our own data, never from input.
        context["qr_svg"] = mark_safe(_qr_svg(device.config_url))  # noqa: S308
        # Authenticator apps take the key in base32, as in the QR code's URL.
        context["secret"] = b32encode(device.bin_key).decode().rstrip("=")
    return render(request, "releases/approvals/second_factor.html", context, status=status)


@login_required
@require_POST
def second_factor_confirm_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    try:
        device, codes = second_factor_confirm(user, request.POST.get("token", ""))
    except SecondFactorError as exc:
        return _enrol_page(request, error=str(exc), status=400)
    otp_login(request, device)
    # Shown once, on this response only.
    return render(request, "releases/approvals/recovery_codes.html", {"codes": codes})


@login_required
@require_http_methods(["GET", "POST"])
def second_factor_verify(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    error = ""
    if request.method == "POST":
        token = request.POST.get("token", "").strip().replace(" ", "")
        device = match_token(user, token) if token else None
        if device is not None:
            otp_login(request, device)
            return redirect(_next_url(request))
        audit_record(
            actor=user, action=AuditAction.SECOND_FACTOR_FAILED, target=user, data={"user": user.get_username()}
        )
        error = "That code does not match. Use a current code from your app, or an unused recovery code."
    return render(
        request,
        "releases/approvals/second_factor_verify.html",
        {"error": error, "next": _next_url(request), "enrolled": second_factor_enrolled(user)},
        status=400 if error else 200,
    )
