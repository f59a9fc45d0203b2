from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from releases.views import change_requests, passkeys
from releases.views.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    # One's own password, through releases.services.people (audited as the person's).
    path("accounts/password_change/", change_requests.password_change, name="password_change"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    # django-otp-webauthn's template tags reverse these names in its own namespace.
    path("account/passkeys/", include((passkeys.urlpatterns, "otp_webauthn"))),
    path("", include("releases.urls")),
]
