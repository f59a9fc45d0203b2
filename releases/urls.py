from __future__ import annotations

from django.urls import URLPattern, path

from releases.views import (
    approvals,
    audit,
    change_requests,
    dashboard,
    handouts,
    history,
    project_forms,
    projects,
    refs,
    release_pages,
    second_factor,
    supply,
    webhooks,
)

app_name = "releases"

urlpatterns: list[URLPattern] = [
    path("", dashboard.dashboard, name="dashboard"),
    path("history/", history.history, name="history"),
    # "+" is in no project name: these two never shadow a project's page.
    path("projects/+add/", project_forms.project_add, name="project_add"),
    path("projects/<str:name>/+edit/", project_forms.project_edit, name="project_edit"),
    path("projects/<str:name>/", projects.project_detail, name="project"),
    path("projects/<str:name>/releases/", projects.project_release_create, name="release_create"),
    path("projects/<str:name>/releases/<str:version>/", release_pages.release_detail, name="release"),
    path("projects/<str:name>/releases/<str:version>/live/", release_pages.release_live, name="release_live"),
    path(
        "projects/<str:name>/releases/<str:version>/publish/<slug:environment>/",
        release_pages.release_publish,
        name="release_publish",
    ),
    path("jobs/<int:job_id>/log/", release_pages.job_log, name="job_log"),
    path("artifacts/<int:artifact_id>/<str:filename>", release_pages.artifact_download, name="artifact_download"),
    path("projects/<str:name>/refs/", refs.project_refs, name="project_refs"),
    # Trusted Publishing: the approved files, to the project's workflow (a signed, single-use link).
    path("publish-files/<str:token>/", handouts.handout_files, name="handout_files"),
    path("publish-files/<str:token>/<str:filename>", handouts.handout_file, name="handout_file"),
    path("webhooks/github/<str:project_name>/", webhooks.github_webhook, name="github_webhook"),
    path("approvals/", approvals.awaiting, name="approvals"),
    path("deployments/<int:deployment_id>/approval/", approvals.approval, name="approval"),
    path("deployments/<int:deployment_id>/approval/live/", approvals.approval_live, name="approval_live"),
    path("deployments/<int:deployment_id>/approval/decide/", approvals.approval_decide, name="approval_decide"),
    path("deployments/<int:deployment_id>/approval/cancel/", approvals.approval_cancel_view, name="approval_cancel"),
    path("audit/", audit.audit, name="audit"),
    path("changes/", change_requests.change_requests, name="change_requests"),
    path("changes/<int:change_id>/decide/", change_requests.change_request_decide, name="change_request_decide"),
    path("changes/<int:change_id>/cancel/", change_requests.change_request_cancel, name="change_request_cancel"),
    path("account/second-factor/", second_factor.second_factor, name="second_factor"),
    path("account/second-factor/confirm/", second_factor.second_factor_confirm_view, name="second_factor_confirm"),
    path("account/second-factor/verify/", second_factor.second_factor_verify, name="second_factor_verify"),
    path("account/second-factor/passkey/", second_factor.passkey_enrol, name="passkey_enrol"),
    path("account/second-factor/remove/", second_factor.second_factor_remove, name="second_factor_remove"),
    path("account/second-factor/recovery-codes/", second_factor.recovery_codes_new, name="recovery_codes_new"),
    path("projects/<str:name>/releases/<str:version>/sbom/", supply.release_sbom, name="release_sbom"),
    path("projects/<str:name>/releases/<str:version>/sbom.json", supply.release_sbom_json, name="release_sbom_json"),
    path("deployments/<int:deployment_id>/summary/", supply.deployment_summary_page, name="deployment_summary"),
    path(
        "deployments/<int:deployment_id>/summary.md", supply.deployment_summary_markdown, name="deployment_summary_md"
    ),
]
