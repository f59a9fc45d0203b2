"""Reads about what releases are made of and how they fared: SBOM
components and diffs, findings, checks, credential age, downloads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from packaging.utils import canonicalize_name

from releases.models import (
    BlockSeverity,
    Credential,
    Deployment,
    DownloadCount,
    Environment,
    Project,
    Release,
    Sbom,
    VulnerabilityAlert,
    VulnerabilityFinding,
)
from releases.models.severity import BLOCK_RANK, SEVERITY_RANK


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    licence: str
    purl: str

    @property
    def key(self) -> str:
        return str(canonicalize_name(self.name))


def _licence(component: dict[str, Any]) -> str:
    names = []
    for entry in component.get("licenses") or []:
        if "expression" in entry:
            names.append(str(entry["expression"]))
            continue
        licence = entry.get("license") or {}
        if licence.get("id") or licence.get("name"):
            names.append(str(licence.get("id") or licence.get("name")))
    return ", ".join(names)


def sbom_components(document: dict[str, Any]) -> list[Component]:
    """The SBOM's components, sorted by name."""
    components = [
        Component(
            name=str(c.get("name", "")),
            version=str(c.get("version", "")),
            licence=_licence(c),
            purl=str(c.get("purl", "")),
        )
        for c in document.get("components") or []
    ]
    return sorted(components, key=lambda c: (c.key, c.version))


@dataclass(frozen=True)
class ChangedComponent:
    name: str
    old_version: str
    new_version: str


@dataclass
class SbomDiff:
    """What a release brings in compared with the project's previous release."""

    release: Release
    previous: Release | None
    has_sbom: bool
    added: list[Component] = field(default_factory=list)
    removed: list[Component] = field(default_factory=list)
    changed: list[ChangedComponent] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def previous_release_with_sbom(release: Release) -> Release | None:
    return (
        Release.objects.filter(project=release.project, sbom__isnull=False)
        .filter(Q(created_at__lt=release.created_at) | Q(created_at=release.created_at, pk__lt=release.pk))
        .order_by("-created_at", "-pk")
        .first()
    )


def sbom_diff(release: Release) -> SbomDiff:
    """Added, removed and changed components against the project's previous
    release that has an SBOM. The project itself is left out: its own
    version always changes."""
    sbom = Sbom.objects.filter(release=release).first()
    previous = previous_release_with_sbom(release)
    diff = SbomDiff(release=release, previous=previous, has_sbom=sbom is not None)
    if sbom is None:
        return diff
    own = canonicalize_name(release.project.name)
    current = {c.key: c for c in sbom_components(sbom.document) if c.key != own}
    before: dict[str, Component] = {}
    if previous is not None:
        before = {c.key: c for c in sbom_components(previous.sbom.document) if c.key != own}
    diff.added = [current[k] for k in sorted(current.keys() - before.keys())]
    diff.removed = [before[k] for k in sorted(before.keys() - current.keys())]
    diff.changed = [
        ChangedComponent(current[k].name, before[k].version, current[k].version)
        for k in sorted(current.keys() & before.keys())
        if current[k].version != before[k].version
    ]
    return diff


def release_findings(release: Release) -> list[VulnerabilityFinding]:
    findings = list(VulnerabilityFinding.objects.filter(release=release))
    return sorted(findings, key=lambda f: (-SEVERITY_RANK.get(f.severity, 0), f.package, f.vuln_id))


def scan_policy_problem(release: Release, environment: Environment) -> str | None:
    """Why the environment's vulnerability policy refuses ``release``, or None."""
    level = environment.block_severity
    if level == BlockSeverity.NONE:
        return None
    label = BlockSeverity(level).label.lower()
    sbom = Sbom.objects.filter(release=release).first()
    if sbom is None or sbom.scanned_at is None:
        why = f" (last attempt: {sbom.scan_error})" if sbom is not None and sbom.scan_error else ""
        return (
            f"{environment.title} blocks known vulnerabilities ({label}), and {release} has not been scanned "
            f"yet{why}. Publish and verify it on a test index first; the scan follows its SBOM."
        )
    threshold = BLOCK_RANK[BlockSeverity(level)]
    blocking = [f for f in release_findings(release) if SEVERITY_RANK.get(f.severity, 0) >= threshold]
    if blocking:
        listed = ", ".join(f"{f.vuln_id} ({f.package} {f.version}, {f.severity})" for f in blocking[:10])
        return (
            f"{environment.title} blocks known vulnerabilities ({label}); {release} has {len(blocking)}: {listed}. "
            "Upgrade the affected dependencies and release a new version."
        )
    return None


@dataclass(frozen=True)
class CredentialAge:
    credential: Credential
    age_days: int
    expired: bool

    @property
    def message(self) -> str:
        limit = settings.CREDENTIAL_MAX_AGE_DAYS
        if self.expired:
            return f"{self.credential.name} is {self.age_days} days old, past the {limit}-day limit: replace it now."
        return f"{self.credential.name} is {self.age_days} days old; replace it before it reaches {limit} days."


def credential_age_warnings() -> list[CredentialAge]:
    """Credentials whose secret was set longer ago than the warning age."""
    now = timezone.now()
    warn_before = now - timedelta(days=settings.CREDENTIAL_WARN_AGE_DAYS)
    warnings = []
    for credential in Credential.objects.order_by("name"):
        set_at = credential.rotated_at or credential.created_at
        if set_at > warn_before:
            continue
        age = (now - set_at).days
        warnings.append(CredentialAge(credential, age, age >= settings.CREDENTIAL_MAX_AGE_DAYS))
    return warnings


def vulnerability_alerts(limit: int = 20) -> list[VulnerabilityAlert]:
    return list(VulnerabilityAlert.objects.select_related("finding", "release__project")[:limit])


def shipped_releases() -> list[Release]:
    """Releases with at least one succeeded deployment and an SBOM."""
    return list(
        Release.objects.filter(deployments__status=Deployment.Status.SUCCEEDED, sbom__isnull=False)
        .select_related("project")
        .distinct()
    )


@dataclass(frozen=True)
class AdoptionLine:
    label: str
    points: str  # SVG polyline points
    latest_share: float
    colour: str


@dataclass(frozen=True)
class AdoptionChart:
    width: int
    height: int
    lines: list[AdoptionLine]
    first_day: date | None
    last_day: date | None
    total_downloads: int


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def adoption_chart(project: Project, *, days: int = 90, width: int = 600, height: int = 200) -> AdoptionChart:
    """Each Python version's share of the project's daily downloads, as SVG
    polylines (x: day, y: share)."""
    since = timezone.now().date() - timedelta(days=days)
    rows = DownloadCount.objects.filter(
        project=project, category=DownloadCount.Category.PYTHON_MINOR, date__gte=since
    ).order_by("date")
    by_day: dict[date, dict[str, int]] = {}
    for row in rows:
        by_day.setdefault(row.date, {})[row.label] = row.downloads
    if not by_day:
        return AdoptionChart(width, height, [], None, None, 0)
    dates = sorted(by_day)
    labels = sorted({label for counts in by_day.values() for label in counts}, key=_version_key)
    span = max((dates[-1] - dates[0]).days, 1)
    lines = []
    for i, label in enumerate(labels):
        points = []
        share = 0.0
        for day in dates:
            total = sum(by_day[day].values()) or 1
            share = by_day[day].get(label, 0) / total
            x = (day - dates[0]).days / span * width
            y = height - share * height
            points.append(f"{x:.1f},{y:.1f}")
        lines.append(AdoptionLine(label, " ".join(points), round(share * 100, 1), PALETTE[i % len(PALETTE)]))
    total_downloads = sum(sum(c.values()) for c in by_day.values())
    return AdoptionChart(width, height, lines, dates[0], dates[-1], total_downloads)


def _version_key(label: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in label.split("."))
    except ValueError:
        return (10**6,)


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
        status=deployment.get_status_display(),
        reason=deployment.reason,
        requested_by=deployment.requested_by.get_username() if deployment.requested_by else "system",
        approvals=[
            SummaryApproval(a.approver.get_username(), a.get_decision_display(), a.created_at)
            for a in deployment.approvals.select_related("approver")
        ],
        index_url=environment.index_url,
        project_url=project_url,
        files=[
            SummaryFile(f.artifact.filename, f.artifact.size, f.artifact.sha256, f.get_state_display(), f.url)
            for f in deployment.files.select_related("artifact")
        ],
        checks=list(deployment.checks.all()),
        steps=[
            SummaryStep(
                j.get_kind_display(),
                j.get_outcome_display() if j.outcome else j.get_state_display(),
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
