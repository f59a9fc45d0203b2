"""Supply-chain pages: a release's SBOM (table, diff, findings, JSON
download) and a deployment's summary (page and Markdown export)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from releases.models import Deployment, Sbom
from releases.selectors.summaries import deployment_summary
from releases.selectors.supply import release_findings, sbom_components, sbom_diff
from releases.views.access import viewer_required
from releases.views.lookups import release_or_404


@viewer_required
@require_GET
def release_sbom(request: HttpRequest, name: str, version: str) -> HttpResponse:
    release = release_or_404(name, version)
    sbom = Sbom.objects.filter(release=release).first()
    return render(
        request,
        "releases/supply/sbom.html",
        {
            "release": release,
            "sbom": sbom,
            "components": sbom_components(sbom.document) if sbom else [],
            "diff": sbom_diff(release),
            "findings": release_findings(release),
        },
    )


@viewer_required
@require_GET
def release_sbom_json(request: HttpRequest, name: str, version: str) -> HttpResponse:
    sbom = get_object_or_404(Sbom.objects.select_related("release__project"), release=release_or_404(name, version))
    response = JsonResponse(sbom.document, json_dumps_params={"indent": 2})
    filename = f"{sbom.release.project.name}-{sbom.release.version}.cdx.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _deployment(deployment_id: int) -> Deployment:
    return get_object_or_404(
        Deployment.objects.select_related("release__project", "environment", "requested_by"), pk=deployment_id
    )


@viewer_required
@require_GET
def deployment_summary_page(request: HttpRequest, deployment_id: int) -> HttpResponse:
    summary = deployment_summary(_deployment(deployment_id))
    return render(request, "releases/supply/deployment_summary.html", {"summary": summary})


@viewer_required
@require_GET
def deployment_summary_markdown(request: HttpRequest, deployment_id: int) -> HttpResponse:
    summary = deployment_summary(_deployment(deployment_id))
    text = render_to_string("releases/supply/deployment_summary.md", {"summary": summary})
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = (
        f'inline; filename="{summary.project}-{summary.version}-{summary.deployment.pk}.md"'
    )
    return response
