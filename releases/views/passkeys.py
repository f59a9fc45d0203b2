"""Passkeys (WebAuthn) through django-otp-webauthn's JSON views, under the
console's rules: registering one is a device change decided by
``passkey_add`` (a fresh verification once the person has a second
factor), and verifying with one marks the session verified from now,
exactly as a code from an authenticator app does.

Reference: https://django-otp-webauthn.readthedocs.io/en/latest/
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse
from django.views.i18n import JavaScriptCatalog
from django_otp_webauthn import exceptions as webauthn_errors
from django_otp_webauthn.utils import rewrite_exceptions
from django_otp_webauthn.views import (
    BeginCredentialAuthenticationView,
    BeginCredentialRegistrationView,
    CompleteCredentialAuthenticationView,
    CompleteCredentialRegistrationView,
)

from releases.client_address import client_address
from releases.services.second_factor import (
    SecondFactorChangeRefused,
    passkey_add,
    passkey_registration_check,
    second_factor_verification_failed,
)
from releases.views.access import viewer_required
from releases.views.second_factor import second_factor_fresh, second_factor_login

# django-otp-webauthn's own logger for the attestation errors it rewrites.
webauthn_logger = logging.getLogger("django_otp_webauthn")


class ChangeRefused(webauthn_errors.OTPWebAuthnApiError):  # type: ignore[misc]
    status_code = 403
    default_code = "second_factor_change_refused"


class _RegistrationRules:
    """The console's rule before the library's own check (which only asks
    for a verified session, however old)."""

    request: HttpRequest

    def initial(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        if isinstance(request.user, User):
            try:
                passkey_registration_check(
                    request.user, session_verified=second_factor_fresh(request), address=client_address(request)
                )
            except SecondFactorChangeRefused as refused:
                raise ChangeRefused(detail=str(refused)) from None
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class PasskeyRegistrationBegin(_RegistrationRules, BeginCredentialRegistrationView):  # type: ignore[misc]
    pass


class PasskeyRegistrationComplete(_RegistrationRules, CompleteCredentialRegistrationView):  # type: ignore[misc]
    def post(self, *args: Any, **kwargs: Any) -> JsonResponse:
        """1. Take the ceremony's state from the session (once, even on error).
        2. Let ``passkey_add`` decide, and inside it the library check the
           attestation and save the credential.
        3. A first second factor verifies the session, as a first app does."""
        user = self.get_user()
        state = self.get_state()
        helper = self.get_helper()
        fresh = second_factor_fresh(self.request)

        def register() -> Any:
            with rewrite_exceptions(logger=webauthn_logger):
                return helper.register_complete(user=user, state=state, data=self.request.data)  # type: ignore[attr-defined]

        try:
            device = passkey_add(user, register, session_verified=fresh, address=client_address(self.request))
        except SecondFactorChangeRefused as refused:
            raise ChangeRefused(detail=str(refused)) from None
        if not fresh:
            second_factor_login(self.request, device)
        return JsonResponse({"id": device.pk, "redirect_url": reverse("releases:second_factor")})


class PasskeyVerifyBegin(BeginCredentialAuthenticationView):  # type: ignore[misc]
    pass


class PasskeyVerifyComplete(CompleteCredentialAuthenticationView):  # type: ignore[misc]
    def complete_auth(self, device: Any) -> None:
        # Passkeys are a second factor only (OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN is off).
        if not self.request.user.is_authenticated:
            raise webauthn_errors.PasswordlessLoginDisabled()
        second_factor_login(self.request, device)

    def get_success_url(self) -> str:
        return self.get_redirect_url() or reverse("releases:approvals")

    def handle_exception(self, exc: Exception) -> Any:
        user = self.request.user
        if isinstance(exc, webauthn_errors.OTPWebAuthnApiError) and isinstance(user, User):
            second_factor_verification_failed(user, address=client_address(self.request), method="passkey")
        return super().handle_exception(exc)


# Under the "otp_webauthn" namespace: the library's template tags reverse these names.
# Each needs a role, as every page does: passkeys are a second factor of a
# person who may read the console, never a way in for anyone else.
urlpatterns: list[URLPattern] = [
    path(
        "registration/begin/",
        viewer_required(PasskeyRegistrationBegin.as_view()),
        name="credential-registration-begin",
    ),
    path(
        "registration/complete/",
        viewer_required(PasskeyRegistrationComplete.as_view()),
        name="credential-registration-complete",
    ),
    path(
        "authentication/begin/",
        viewer_required(PasskeyVerifyBegin.as_view()),
        name="credential-authentication-begin",
    ),
    path(
        "authentication/complete/",
        viewer_required(PasskeyVerifyComplete.as_view()),
        name="credential-authentication-complete",
    ),
    path(
        "jsi18n/",
        viewer_required(JavaScriptCatalog.as_view(packages=["django_otp_webauthn"])),
        name="js-i18n-catalog",
    ),
]
