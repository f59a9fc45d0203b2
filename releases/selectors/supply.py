"""Supply chain: SBOM components and the diff against the previous
release, vulnerability findings and alerts, and the scan policy an
environment applies before an upload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from packaging.utils import canonicalize_name

from releases.models import (
    BlockSeverity,
    Deployment,
    Environment,
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


def vulnerability_alerts(limit: int = 20) -> list[VulnerabilityAlert]:
    return list(VulnerabilityAlert.objects.select_related("finding", "release__project")[:limit])


def shipped_releases() -> list[Release]:
    """Releases with at least one succeeded deployment and an SBOM."""
    return list(
        Release.objects.filter(deployments__outcome=Deployment.Outcome.SUCCEEDED, sbom__isnull=False)
        .select_related("project")
        .distinct()
    )
