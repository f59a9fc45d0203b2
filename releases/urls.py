from __future__ import annotations

from django.urls import path

from releases.views import supply

app_name = "releases"

urlpatterns = [
    path("releases/<int:release_id>/sbom/", supply.release_sbom, name="release_sbom"),
    path("releases/<int:release_id>/sbom.json", supply.release_sbom_json, name="release_sbom_json"),
    path("deployments/<int:deployment_id>/summary/", supply.deployment_summary_page, name="deployment_summary"),
    path(
        "deployments/<int:deployment_id>/summary.md", supply.deployment_summary_markdown, name="deployment_summary_md"
    ),
]
