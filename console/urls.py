from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from releases.views import passkeys
from releases.views.health import healthz

admin.site.site_header = "Release console administration"
admin.site.site_title = "Release console"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    # django-otp-webauthn's template tags reverse these names in its own namespace.
    path("account/passkeys/", include((passkeys.urlpatterns, "otp_webauthn"))),
    path("", include("releases.urls")),
]
