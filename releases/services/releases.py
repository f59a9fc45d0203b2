"""Releases: create one (and its build job), record what the build made."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from releases.actors import Actor, person
from releases.models import Artifact, Deployment, Job, Project, Release
from releases.services.audit import audit_record
from releases.services.deployments import deployment_start, deployment_transition
from releases.services.jobs import job_create
from releases.validators import clean_ref, clean_version


def release_create(*, project: Project, version: str, ref: str, actor: Actor) -> Release:
    """Create version ``version`` of ``project`` from git ``ref``, and queue its build."""
    version = clean_version(version)
    ref = clean_ref(ref)
    try:
        with transaction.atomic():
            release = Release.objects.create(
                project=project,
                version=version,
                ref=ref,
                created_by=person(actor),
            )
            audit_record(
                actor=actor,
                action="release.created",
                target=release,
                release=release,
                data={"project": project.name, "version": version, "ref": ref},
            )
            job_create(kind=Job.Kind.BUILD, release=release)
    except IntegrityError:
        raise ValidationError(
            f"{project.name} {version} already exists; a version is built once. Choose a new version."
        ) from None
    return release


def release_mark_building(release: Release) -> None:
    Release.objects.filter(pk=release.pk, build_state=Release.BuildState.PENDING).update(
        build_state=Release.BuildState.BUILDING
    )


def release_record_build(release: Release, *, commit: str, artifacts: list[Artifact], warnings: list[str]) -> None:
    """Store the build's outcome and start any deployment that waited for it."""
    with transaction.atomic():
        locked = Release.objects.select_for_update().get(pk=release.pk)
        if locked.is_built:
            # Built once: a second run of the same job keeps the first bytes.
            return
        for artifact in artifacts:
            artifact.release = locked
            artifact.save()
        locked.commit = commit
        locked.build_state = Release.BuildState.BUILT
        locked.build_warnings = warnings
        locked.build_error = ""
        locked.built_at = timezone.now()
        locked.save(update_fields=["commit", "build_state", "build_warnings", "build_error", "built_at"])
        audit_record(
            actor=None,
            action="release.built",
            target=locked,
            release=locked,
            data={"commit": commit, "files": {a.filename: a.sha256 for a in artifacts}, "warnings": warnings},
        )
        for deployment in locked.deployments.filter(status=Deployment.Status.QUEUED, jobs__isnull=True):
            deployment_start(deployment)


def release_record_build_failure(release: Release, reason: str) -> None:
    with transaction.atomic():
        updated = (
            Release.objects.filter(pk=release.pk)
            .exclude(build_state=Release.BuildState.BUILT)
            .update(build_state=Release.BuildState.FAILED, build_error=reason[:5000])
        )
        if not updated:
            return
        audit_record(
            actor=None, action="release.build_failed", target=release, release=release, data={"reason": reason[:1000]}
        )
        for deployment in release.deployments.filter(status__in=Deployment.ACTIVE_STATUSES):
            deployment_transition(deployment, Deployment.Status.FAILED, reason=f"The build failed: {reason}")
