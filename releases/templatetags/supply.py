"""Supply-chain parts other pages include: ``{% load supply %}`` then
``{% sbom_diff release %}``, ``{% scan_findings release %}``,
``{% check_results deployment %}``, ``{% adoption_chart project %}``,
``{% credential_warnings %}``, ``{% vulnerability_alerts %}``."""

from __future__ import annotations

from typing import Any

from django import template

from releases.models import Deployment, Project, Release, Sbom
from releases.selectors import credentials, downloads, supply

register = template.Library()


@register.inclusion_tag("releases/includes/sbom_diff.html")
def sbom_diff(release: Release) -> dict[str, Any]:
    return {"diff": supply.sbom_diff(release)}


@register.inclusion_tag("releases/includes/scan_findings.html")
def scan_findings(release: Release) -> dict[str, Any]:
    return {
        "sbom": Sbom.objects.filter(release=release).first(),
        "findings": supply.release_findings(release),
    }


@register.inclusion_tag("releases/includes/check_results.html")
def check_results(deployment: Deployment) -> dict[str, Any]:
    return {"checks": list(deployment.checks.all())}


@register.inclusion_tag("releases/includes/adoption_chart.html")
def adoption_chart(project: Project) -> dict[str, Any]:
    return {"chart": downloads.adoption_chart(project)}


@register.inclusion_tag("releases/includes/credential_warnings.html")
def credential_warnings() -> dict[str, Any]:
    return {"warnings": credentials.credential_age_warnings()}


@register.inclusion_tag("releases/includes/vulnerability_alerts.html")
def vulnerability_alerts() -> dict[str, Any]:
    return {"alerts": supply.vulnerability_alerts()}


@register.filter
def md_cell(value: object) -> str:
    """Text safe inside one Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")
