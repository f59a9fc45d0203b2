from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from releases.views.health import healthz

admin.site.site_header = "Release console administration"
admin.site.site_title = "Release console"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("", include("releases.urls")),
]
