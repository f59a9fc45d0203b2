from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from releases.views.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", include("releases.urls")),
]
