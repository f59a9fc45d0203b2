"""Vulnerability scans of a release's SBOM components, and the daily
re-check of every shipped version."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from packageurl import PackageURL

from releases.clients import osv
from releases.errors import TransientError
from releases.models import AuditAction, Job, Release, Sbom, VulnerabilityAlert, VulnerabilityFinding
from releases.selectors.supply import Component, sbom_components, shipped_releases
from releases.services.audit import audit_record
from releases.services.config import retry_policy
from releases.services.jobs import job_create

logger = logging.getLogger(__name__)


def pypi_purl(component: Component) -> str | None:
    """A plain ``pkg:pypi/name@version`` for the query (qualifiers dropped)."""
    try:
        purl = PackageURL.from_string(component.purl) if component.purl else None
    except ValueError:
        purl = None
    if purl is not None and purl.type != "pypi":
        return None
    if not component.name or not component.version:
        return None
    return PackageURL(type="pypi", name=component.key, version=component.version).to_string()


@dataclass
class ScanReport:
    components: int
    new_findings: list[VulnerabilityFinding]


def release_scan(release: Release, *, alert: bool = False) -> ScanReport:
    """Ask the vulnerability service about every component of the SBOM.

    1. One batch query with every component's purl, then the details of
       each vulnerability found (severity, fixed versions).
    2. Store findings not seen before, mark the SBOM scanned, audit.
    3. With ``alert``, each new finding of a shipped version becomes an
       alert and an email to the administrators.

    An unreachable service raises TransientError after recording why on the
    SBOM, so that the scan is retried instead of passing silently.
    """
    sbom = Sbom.objects.get(release=release)
    components = [c for c in sbom_components(sbom.document) if pypi_purl(c)]
    try:
        ids = osv.query_batch(settings.OSV_API_URL, [pypi_purl(c) or "" for c in components], policy=retry_policy())
        details: dict[tuple[str, str], osv.Vulnerability] = {}
        for component, vuln_ids in zip(components, ids, strict=True):
            for vuln_id in vuln_ids:
                details[(component.key, vuln_id)] = osv.vulnerability(
                    settings.OSV_API_URL, vuln_id, component.name, policy=retry_policy()
                )
    except TransientError as exc:
        why = f"{exc} The scan will be retried."
        Sbom.objects.filter(pk=sbom.pk).update(scan_error=why[:2000])
        raise TransientError(why) from None
    versions = {c.key: c.version for c in components}
    new: list[VulnerabilityFinding] = []
    with transaction.atomic():
        for (package, _), vuln in details.items():
            finding, created = VulnerabilityFinding.objects.get_or_create(
                release=release,
                package=package,
                version=versions[package],
                vuln_id=vuln.id,
                defaults={
                    "summary": vuln.summary[:2000],
                    "aliases": vuln.aliases,
                    "severity": vuln.severity,
                    "fixed_versions": vuln.fixed_versions,
                },
            )
            if created:
                new.append(finding)
        Sbom.objects.filter(pk=sbom.pk).update(scanned_at=timezone.now(), scan_error="")
        audit_record(
            actor=None,
            action=AuditAction.RELEASE_SCANNED,
            target=sbom,
            release=release,
            data={
                "components": len(components),
                "findings": VulnerabilityFinding.objects.filter(release=release).count(),
                "new": [f"{f.vuln_id} {f.package} {f.version}" for f in new],
            },
        )
        if alert:
            for finding in new:
                VulnerabilityAlert.objects.create(finding=finding, release=release)
    if alert and new:
        _email_alerts(release, new)
    return ScanReport(len(components), new)


def admin_emails() -> list[str]:
    return sorted(
        set(User.objects.filter(is_superuser=True, is_active=True).exclude(email="").values_list("email", flat=True))
    )


def _email_alerts(release: Release, findings: list[VulnerabilityFinding]) -> None:
    recipients = admin_emails()
    if not recipients:
        return
    lines = [
        f"- {f.vuln_id} in {f.package} {f.version} ({f.severity}): {f.summary}"
        + (f" Fixed in {', '.join(f.fixed_versions)}." if f.fixed_versions else "")
        for f in findings
    ]
    send_mail(
        subject=f"[release console] {release} gained {len(findings)} known vulnerabilities",
        message=f"{release} has shipped, and these vulnerabilities became known since:\n\n" + "\n".join(lines),
        from_email=None,
        recipient_list=recipients,
    )
    VulnerabilityAlert.objects.filter(finding__in=findings).update(emailed_to=recipients)


def scan_pending() -> list[int]:
    """Queue a scan for each SBOM not scanned yet whose last scan is over
    (the service was unreachable): the retry of a failed scan."""
    busy = Job.objects.filter(kind=Job.Kind.SCAN, state__in=[Job.State.QUEUED, Job.State.RUNNING]).values("release_id")
    queued = []
    for sbom in Sbom.objects.filter(scanned_at__isnull=True).exclude(release_id__in=busy).select_related("release"):
        with transaction.atomic():
            job_create(kind=Job.Kind.SCAN, release=sbom.release)
        queued.append(sbom.release_id)
    return queued


def vulnerabilities_recheck() -> dict[str, int]:
    """Scan every shipped version again; new findings become alerts."""
    checked = failed = new = 0
    for release in shipped_releases():
        try:
            report = release_scan(release, alert=True)
        except TransientError as exc:
            logger.warning("re-check of %s: %s", release, exc)
            failed += 1
            continue
        checked += 1
        new += len(report.new_findings)
    return {"checked": checked, "failed": failed, "new": new}
