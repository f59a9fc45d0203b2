"""Supply-chain pages: a release's SBOM (table, diff, findings, JSON
download) and a deployment's summary (page and Markdown export)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from releases.models import Deployment, Release, Sbom
from releases.selectors.release_pages import release_for_page
from releases.selectors.summaries import deployment_summary
from releases.selectors.supply import release_findings, sbom_components, sbom_diff


def _release(name: str, version: str) -> Release:
    release = release_for_page(name, version)
    if release is None:
        raise Http404(f"There is no release {version!r} of {name!r}.")
    return release


@login_required
@require_GET
def release_sbom(request: HttpRequest, name: str, version: str) -> HttpResponse:
    release = _release(name, version)
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


@login_required
@require_GET
def release_sbom_json(request: HttpRequest, name: str, version: str) -> HttpResponse:
    sbom = get_object_or_404(Sbom.objects.select_related("release__project"), release=_release(name, version))
    response = JsonResponse(sbom.document, json_dumps_params={"indent": 2})
    filename = f"{sbom.release.project.name}-{sbom.release.version}.cdx.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _deployment(deployment_id: int) -> Deployment:
    return get_object_or_404(
        Deployment.objects.select_related("release__project", "environment", "requested_by"), pk=deployment_id
    )


@login_required
@require_GET
def deployment_summary_page(request: HttpRequest, deployment_id: int) -> HttpResponse:
    summary = deployment_summary(_deployment(deployment_id))
    return render(request, "releases/supply/deployment_summary.html", {"summary": summary})


@login_required
@require_GET
def deployment_summary_markdown(request: HttpRequest, deployment_id: int) -> HttpResponse:
    summary = deployment_summary(_deployment(deployment_id))
    text = render_to_string("releases/supply/deployment_summary.md", {"summary": summary})
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = (
        f'inline; filename="{summary.project}-{summary.version}-{summary.deployment.pk}.md"'
    )
    return response
