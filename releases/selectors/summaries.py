"""A deployment's summary: what a maintainer pastes into a release
announcement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from releases.models import Deployment, Sbom, VulnerabilityFinding
from releases.selectors.supply import SbomDiff, release_findings, sbom_diff


@dataclass(frozen=True)
class SummaryFile:
    filename: str
    size: int
    sha256: str
    state: str
    url: str


@dataclass(frozen=True)
class SummaryStep:
    kind: str
    outcome: str
    seconds: float | None


@dataclass(frozen=True)
class SummaryApproval:
    approver: str
    decision: str
    at: Any


@dataclass
class DeploymentSummary:
    """What a maintainer pastes into a release announcement."""

    deployment: Deployment
    project: str
    version: str
    environment: str
    status: str
    reason: str
    requested_by: str
    approvals: list[SummaryApproval]
    index_url: str
    project_url: str
    files: list[SummaryFile]
    checks: list[Any]
    steps: list[SummaryStep]
    sbom: Sbom | None
    sbom_components: int | None
    diff: SbomDiff
    scanned: bool
    scan_error: str
    findings: list[VulnerabilityFinding]

    @property
    def findings_by_severity(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return counts


def deployment_summary(deployment: Deployment) -> DeploymentSummary:
    release = deployment.release
    environment = deployment.environment
    project_url = ""
    if environment.project_url_template:
        try:
            project_url = environment.project_url_template.format(name=release.project.name, version=release.version)
        except (KeyError, IndexError, ValueError):
            project_url = ""
    sbom = Sbom.objects.filter(release=release).first()
    return DeploymentSummary(
        deployment=deployment,
        project=release.project.name,
        version=release.version,
        environment=environment.title,
        status=deployment.label,
        reason=deployment.reason,
        requested_by=deployment.requested_by.get_username() if deployment.requested_by else "system",
        approvals=[
            SummaryApproval(a.approver.get_username(), a.get_decision_display(), a.created_at)
            for a in deployment.approvals.select_related("approver")
        ],
        index_url=environment.index_url,
        project_url=project_url,
        files=[
            SummaryFile(f.artifact.filename, f.artifact.size, f.artifact.sha256, f.label, f.url)
            for f in deployment.files.select_related("artifact")
        ],
        checks=list(deployment.checks.all()),
        steps=[
            SummaryStep(
                j.get_kind_display(),
                j.label,
                j.duration_seconds,
            )
            for j in deployment.jobs.order_by("created_at", "id")
        ],
        sbom=sbom,
        sbom_components=sbom.components if sbom else None,
        diff=sbom_diff(release),
        scanned=bool(sbom and sbom.scanned_at),
        scan_error=sbom.scan_error if sbom else "",
        findings=release_findings(release),
    )
