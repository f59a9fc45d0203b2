"""Releases: create one (and its build job), and record what the build made."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from releases.actors import Actor, person
from releases.clients import artifacts
from releases.models import Artifact, AuditAction, Deployment, Job, Project, Release
from releases.services.audit import audit_record
from releases.services.deployments import deployment_fail, deployment_start
from releases.services.jobs import job_create
from releases.services.lifecycle import transition
from releases.steps.runner import sha256_file
from releases.validators import clean_ref, clean_version

ADD_RELEASE_PERMISSION = "releases.add_release"


def release_create(*, project: Project, version: str, ref: str, actor: Actor) -> Release:
    """Create version ``version`` of ``project`` from git ``ref``, and queue its build.

    A person (a page's user, a command's ``--as``) needs the releaser's
    permission to; ``actor`` None is the console itself."""
    user = person(actor)
    if user is not None and not user.has_perm(ADD_RELEASE_PERMISSION):
        raise ValidationError(f"{user.get_username()} does not have the add release permission (a releaser's).")
    version = clean_version(version)
    ref = clean_ref(ref)
    try:
        with transaction.atomic():
            release = Release.objects.create(project=project, version=version, ref=ref, created_by=person(actor))
            audit_record(
                actor=actor,
                action=AuditAction.RELEASE_CREATED,
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


def release_at_ref(*, project: Project, version: str, ref: str, actor: Actor) -> tuple[Release, bool]:
    """Version ``version`` of ``project`` from ``ref``, created (its build queued) if it does not exist.

    Returns the release and whether it was made now. An existing release
    must come from that very ref: a version is built once.
    """
    version = clean_version(version)
    ref = clean_ref(ref)
    release = Release.objects.filter(project=project, version=version).first()
    if release is None:
        return release_create(project=project, version=version, ref=ref, actor=actor), True
    if release.ref != ref:
        raise ValidationError(
            f"{project.name} {version} exists already, from {release.ref!r}, not {ref!r}; "
            "a version is built once. Choose a new version for the new ref."
        )
    return release, False


def release_start_build(release: Release) -> None:
    """The build job has started (a second attempt finds it building already)."""
    transition(release, Release.State.BUILDING, expect=[Release.State.QUEUED])


def release_store_files(
    release: Release, files: list[Path], *, origins: Mapping[str, tuple[str, str]] | None = None
) -> list[Artifact]:
    """Put the built files in artifact storage, each written once under a
    name that holds its digest (an attempt that died before the build was
    recorded may have left other bytes: those stay unseen beside it). The
    rows are written with the build's record (``release_record_build``).
    ``origins`` says, by filename, where a file came from when the console
    did not build it as it is (repaired, collected from CI)."""
    rows = []
    for path in files:
        origin, detail = (origins or {}).get(path.name, (Artifact.Origin.BUILT, ""))
        digest = sha256_file(path)
        stored = artifacts.store(path, f"{release.project.name}/{release.version}/{digest}/{path.name}")
        rows.append(
            Artifact(
                release=release,
                filename=path.name,
                kind=Artifact.Kind.WHEEL if path.suffix == ".whl" else Artifact.Kind.SDIST,
                size=stored.size,
                sha256=stored.sha256,
                path=stored.name,
                origin=origin,
                origin_detail=detail[:500],
            )
        )
    return rows


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
        files = list(locked.artifacts.order_by("kind", "filename"))
        transition(
            locked,
            Release.State.FINISHED,
            outcome=Release.Outcome.BUILT,
            changes={"commit": commit, "warnings": warnings},
            data={
                "commit": commit,
                "files": {a.filename: a.sha256 for a in files},
                "origins": {a.filename: a.origin_detail for a in files if a.origin_detail},
                "warnings": warnings,
            },
        )
        for deployment in locked.deployments.filter(state=Deployment.State.QUEUED, jobs__isnull=True):
            deployment_start(deployment)


def release_record_sdist(release: Release, *, commit: str, artifacts: list[Artifact], warnings: list[str]) -> None:
    """The build of a release whose wheels come from CI: keep its sdist and
    commit, and queue the job that collects the wheels (the release stays
    building until ``release_record_build``)."""
    with transaction.atomic():
        locked = Release.objects.select_for_update().get(pk=release.pk)
        if locked.is_built or locked.artifacts.exists():
            return
        for artifact in artifacts:
            artifact.release = locked
            artifact.save()
        Release.objects.filter(pk=locked.pk).update(commit=commit, warnings=warnings)
        job_create(kind=Job.Kind.COLLECT, release=locked)


def release_record_build_failure(release: Release, reason: str) -> None:
    """The build failed: so does every deployment that waited for it."""
    with transaction.atomic():
        failed = transition(
            release,
            Release.State.FINISHED,
            outcome=Release.Outcome.FAILED,
            reason=reason,
            expect=[Release.State.QUEUED, Release.State.BUILDING],
        )
        if failed is None:
            return
        for deployment in release.deployments.exclude(state=Deployment.State.FINISHED):
            deployment_fail(deployment, f"The build failed: {reason}")
