"""Deployments: request one, and move it from status to status.

``deployment_transition`` is the only code that changes a deployment's
status. It checks the move is allowed and writes the audit event in the
same transaction.
"""

from __future__ import annotations

from datetime import timedelta
from fnmatch import fnmatchcase

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from releases.actors import Actor, person
from releases.models import Deployment, DeploymentFile, Environment, Job, Project, Release
from releases.redaction import redact
from releases.services.audit import audit_record

Status = Deployment.Status

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    Status.PENDING_APPROVAL: {Status.APPROVED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED, Status.FAILED},
    Status.APPROVED: {Status.QUEUED, Status.CANCELLED, Status.FAILED},
    Status.QUEUED: {Status.UPLOADING, Status.VERIFYING, Status.CANCELLED, Status.FAILED},
    Status.UPLOADING: {Status.VERIFYING, Status.FAILED},
    Status.VERIFYING: {Status.SUCCEEDED, Status.FAILED},
}


class TransitionError(Exception):
    """A status change that the deployment's current status does not allow."""


def deployment_transition(
    deployment: Deployment, to: str, *, actor: Actor = None, reason: str = "", data: dict[str, object] | None = None
) -> Deployment:
    """Move ``deployment`` to status ``to``, audited, or raise TransitionError."""
    with transaction.atomic():
        current = Deployment.objects.select_for_update().get(pk=deployment.pk)
        if to not in ALLOWED_TRANSITIONS.get(current.status, set()):
            raise TransitionError(f"A deployment that is {current.get_status_display().lower()} cannot become {to}.")
        now = timezone.now()
        current.status = to
        fields = ["status"]
        if reason:
            current.reason = redact(reason)[:5000]
            fields.append("reason")
        if to in (Status.UPLOADING, Status.VERIFYING) and current.started_at is None:
            current.started_at = now
            fields.append("started_at")
        if to in Deployment.FINAL_STATUSES:
            current.finished_at = now
            fields.append("finished_at")
        current.save(update_fields=fields)
        audit_record(
            actor=actor,
            action=f"deployment.{to}",
            target=current,
            release=current.release,
            data={
                "environment": current.environment.name,
                "version": current.release.version,
                "reason": current.reason if reason else "",
                **(data or {}),
            },
        )
    deployment.refresh_from_db()
    return deployment


def deployment_request(*, release: Release, environment: Environment, actor: Actor) -> Deployment:
    """Ask for ``release`` to go to ``environment``.

    1. Check the environment's rules: the ref is allowed there, the release
       has not failed to build, the environment it must follow has seen
       this release succeed.
    2. Write the deployment (pending approval, or queued) and audit it; the
       database refuses a second active deployment of the same release to
       the same environment, so a double click starts one.
    3. If it needs no approval and the release is built, queue the upload.
    """
    deployment_check_rules(release, environment)
    needs_approval = environment.required_approvals > 0
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                release=release,
                environment=environment,
                requested_by=person(actor),
                status=Status.PENDING_APPROVAL if needs_approval else Status.QUEUED,
                required_approvals=environment.required_approvals,
                expires_at=timezone.now() + timedelta(hours=environment.request_ttl_hours) if needs_approval else None,
            )
            audit_record(
                actor=actor,
                action="deployment.requested",
                target=deployment,
                release=release,
                data={
                    "environment": environment.name,
                    "version": release.version,
                    "required_approvals": environment.required_approvals,
                },
            )
            if needs_approval:
                from releases.services.approvals import approvals_notify

                approvals_notify(deployment)
            else:
                deployment_start(deployment)
    except IntegrityError:
        existing = Deployment.objects.filter(
            release=release, environment=environment, status__in=Deployment.ACTIVE_STATUSES
        ).first()
        if existing is None:
            raise
        return existing
    return deployment


def deployment_check_rules(release: Release, environment: Environment) -> None:
    from releases.selectors.supply import scan_policy_problem

    if release.build_state == Release.BuildState.FAILED:
        raise ValidationError(f"{release} failed to build; create a new version instead.")
    policy = scan_policy_problem(release, environment)
    if policy:
        raise ValidationError(policy)
    if environment.allowed_ref_pattern and not fnmatchcase(release.ref, environment.allowed_ref_pattern):
        raise ValidationError(
            f"{environment.title} only takes releases from refs matching {environment.allowed_ref_pattern!r}; "
            f"this release is from {release.ref!r}."
        )
    earlier = environment.requires_success_in
    if (
        earlier is not None
        and not Deployment.objects.filter(release=release, environment=earlier, status=Status.SUCCEEDED).exists()
    ):
        raise ValidationError(
            f"{release} must be published and verified on {earlier.title} before it can go to {environment.title}."
        )


def deployment_start(deployment: Deployment) -> None:
    """Queue the upload (or, for a project that publishes through its GitHub
    workflow, the dispatch), once the release is built (else the build starts it)."""
    from releases.services.jobs import job_create

    release = deployment.release
    if not release.is_built:
        return
    through_workflow = release.project.publish_mode == Project.PublishMode.WORKFLOW
    with transaction.atomic():
        for artifact in release.artifacts.all():
            DeploymentFile.objects.get_or_create(deployment=deployment, artifact=artifact)
        job_create(
            kind=Job.Kind.DISPATCH if through_workflow else Job.Kind.UPLOAD, release=release, deployment=deployment
        )


def deployment_cancel(deployment: Deployment, *, actor: Actor, reason: str = "") -> Deployment:
    if deployment.jobs.filter(state=Job.State.RUNNING).exists():
        raise TransitionError("The upload has started; a running deployment cannot be cancelled.")
    with transaction.atomic():
        deployment_transition(deployment, Status.CANCELLED, actor=actor, reason=reason or "Cancelled.")
        deployment.jobs.filter(state=Job.State.QUEUED).update(
            state=Job.State.FINISHED, outcome=Job.Outcome.CANCELLED, finished_at=timezone.now()
        )
    return deployment
