"""What a release is made of, and the checks on what was published: SBOMs
and post-publication check results."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from releases.models import AuditAction, CheckResult, Deployment, Release, Sbom
from releases.redaction import redact
from releases.services.audit import audit_record


def check_record(deployment: Deployment, name: str, *, passed: bool, detail: str, seconds: float) -> CheckResult:
    """Store one check's result; a second attempt of the same job replaces it."""
    result, _ = CheckResult.objects.update_or_create(
        deployment=deployment,
        name=name,
        defaults={"passed": passed, "detail": redact(detail)[:5000], "seconds": round(seconds, 3)},
    )
    return result


def sbom_record(release: Release, document: dict[str, Any]) -> Sbom | None:
    """Store the release's SBOM, once.

    The first successful verify makes it; later ones return None and keep
    the first document (the release's files never change).
    """
    components = len(document.get("components") or [])
    try:
        with transaction.atomic():
            sbom = Sbom.objects.create(release=release, document=document, components=components)
            audit_record(
                actor=None,
                action=AuditAction.RELEASE_SBOM_RECORDED,
                target=sbom,
                release=release,
                data={"components": components, "spec_version": document.get("specVersion", "")},
            )
    except IntegrityError:
        return None
    return sbom
