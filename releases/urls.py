from __future__ import annotations

from django.urls import path

from releases.views import dashboard, history, projects, refs, release_pages, webhooks

app_name = "releases"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("history/", history.history, name="history"),
    path("projects/<str:name>/", projects.project_detail, name="project"),
    path("projects/<str:name>/releases/", projects.project_release_create, name="release_create"),
    path("projects/<str:name>/releases/<str:version>/", release_pages.release_detail, name="release"),
    path("projects/<str:name>/releases/<str:version>/live/", release_pages.release_live, name="release_live"),
    path(
        "projects/<str:name>/releases/<str:version>/deploy/<slug:environment>/",
        release_pages.release_deploy,
        name="release_deploy",
    ),
    path("jobs/<int:job_id>/log/", release_pages.job_log, name="job_log"),
    path("artifacts/<int:artifact_id>/<str:filename>", release_pages.artifact_download, name="artifact_download"),
    path("projects/<str:name>/refs/", refs.project_refs, name="project_refs"),
    path("webhooks/github/<str:project_name>/", webhooks.github_webhook, name="github_webhook"),
]
