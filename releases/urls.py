from __future__ import annotations

from django.urls import URLPattern, path

from releases.views import refs, webhooks

app_name = "releases"

urlpatterns: list[URLPattern] = [
    path("webhooks/github/<str:project_name>/", webhooks.github_webhook, name="github_webhook"),
    path("projects/<str:name>/refs/", refs.project_refs, name="project_refs"),
]
