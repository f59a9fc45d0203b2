"""Deployments: what stands in the way of one, requesting it, starting its
upload, cancelling it, and the summary written when it succeeds.

``deployment_blockers`` is the one place that decides whether a release may
go to an environment: the release page offers the button exactly when it
returns no blocker, and ``deployment_request`` refuses with the same
sentences. Moves between states go through ``lifecycle.transition``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import cast

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from releases.actors import Actor, person
from releases.models import (
    PUBLISH_PERMISSION,
    REQUEST_PERMISSION,
    AuditAction,
    Deployment,
    DeploymentFile,
    Environment,
    FileProvenance,
    Job,
    Project,
    Release,
    Sbom,
    ShippedSummary,
)
from releases.selectors.supply import scan_policy_problem
from releases.services.audit import audit_record
from releases.services.destinations import destination_of
from releases.services.index_rules import release_rule_problems
from releases.services.jobs import job_cancel, job_create
from releases.services.lifecycle import transition
from releases.services.notifications import approvals_notify

State = Deployment.State
Outcome = Deployment.Outcome


@dataclass(frozen=True)
class Blocker:
    """Something that stands between a release and an environment, in words
    a person can act on. ``code`` lets a page tell kinds apart (a missing
    permission is not shown as an offer to anyone)."""

    code: str
    message: str


PERMISSION = "permission"
REQUESTER = "requester"
ACTIVE = "active"


def environment_action(environment: Environment) -> tuple[str, str]:
    """The button's words, and the permission the click needs."""
    if environment.required_approvals == 0:
        return f"Publish to {environment.title}", PUBLISH_PERMISSION
    return f"Request push to {environment.title}", REQUEST_PERMISSION


def deployment_blockers(release: Release, environment: Environment, user: Actor) -> list[Blocker]:
    """Why ``user`` may not send ``release`` to ``environment`` now; empty when they may.

    ``user`` None is the console itself (a command run without ``--as``),
    which needs no permission but may only publish where no approval is
    needed: a push that needs approval needs a person on record who asked,
    or "the requester cannot approve" would not hold. A release tag's
    webhook asks as the service account (``roles.service_account``).
    """
    blockers = []
    _, permission = environment_action(environment)
    if user is None and environment.required_approvals > 0:
        blockers.append(
            Blocker(
                REQUESTER,
                f"{environment.title} needs approval, so a named person must ask for it "
                "(on the command line: --as USERNAME, a releaser).",
            )
        )
    if user is not None and not user.has_perm(permission):
        blockers.append(
            Blocker(PERMISSION, f"You do not have the {permission.split('.')[-1].replace('_', ' ')} permission.")
        )
    if release.build_failed:
        blockers.append(Blocker("build_failed", "The build failed; create a new version."))
    active = Deployment.objects.filter(release=release, environment=environment).exclude(state=State.FINISHED).first()
    if active is not None:
        blockers.append(Blocker(ACTIVE, f"A deployment is already {active.label.lower()}."))
    if environment.allowed_ref_pattern and not fnmatchcase(release.ref, environment.allowed_ref_pattern):
        blockers.append(
            Blocker(
                "ref_pattern",
                f"{environment.title} only takes releases from refs matching {environment.allowed_ref_pattern!r}; "
                f"this release is from {release.ref!r}.",
            )
        )
    earlier = environment.requires_success_in
    if (
        earlier is not None
        and not Deployment.objects.filter(release=release, environment=earlier, outcome=Outcome.SUCCEEDED).exists()
    ):
        blockers.append(
            Blocker(
                "order",
                f"{release} must be published and verified on {earlier.title} before it can go to {environment.title}.",
            )
        )
    policy = scan_policy_problem(release, environment)
    if policy:
        blockers.append(Blocker("scan_policy", policy))
    if environment.credential_id is None and release.project.publish_mode == Project.PublishMode.TWINE:
        blockers.append(
            Blocker(
                "credential",
                f"{environment.title} has no token: add one to the environment (an administrator can) "
                "before publishing there.",
            )
        )
    if not any(b.code in (PERMISSION, REQUESTER, ACTIVE) for b in blockers):
        blockers += index_rule_blockers(release, environment)
    return blockers


INDEX_RULE = "index_rule"


def index_rule_blockers(release: Release, environment: Environment) -> list[Blocker]:
    """One blocker for each of PyPI's upload rules the release's files would
    break on ``environment`` (when its ``pypi_rules`` are on)."""
    return [Blocker(INDEX_RULE, problem) for problem in release_rule_problems(release, environment)]


def deployment_request(*, release: Release, environment: Environment, actor: Actor) -> Deployment:
    """Ask for ``release`` to go to ``environment``.

    1. ``deployment_blockers`` must find nothing but, at most, an active
       deployment of the same release there: a double click gets the
       deployment the first click started.
    2. Write the deployment (pending approval, or queued) with where it
       goes (``destinations.destination_of``) and audit it; the
       database refuses a second active deployment of the same release to
       the same environment, so two clicks at once start one.
    3. If it needs no approval and the release is built, queue the upload;
       if it needs approval, mail the approvers.
    """
    blockers = deployment_blockers(release, environment, actor)
    refusals = [b.message for b in blockers if b.code != ACTIVE]
    if refusals:
        raise ValidationError(refusals)
    if blockers:
        return _active(release, environment)
    needs_approval = environment.required_approvals > 0
    destination = destination_of(environment, release.project)
    try:
        with transaction.atomic():
            deployment = Deployment.objects.create(
                destination=destination,
                release=release,
                environment=environment,
                requested_by=person(actor),
                state=State.PENDING_APPROVAL if needs_approval else State.QUEUED,
                required_approvals=environment.required_approvals,
                expires_at=timezone.now() + timedelta(hours=environment.request_ttl_hours) if needs_approval else None,
            )
            audit_record(
                actor=actor,
                action=AuditAction.DEPLOYMENT_REQUESTED,
                target=deployment,
                release=release,
                data={
                    "environment": environment.name,
                    "version": release.version,
                    "required_approvals": environment.required_approvals,
                    "destination": destination,
                },
            )
            if needs_approval:
                approvals_notify(deployment)
            else:
                deployment_start(deployment)
    except IntegrityError:
        return _active(release, environment)
    return deployment


def _active(release: Release, environment: Environment) -> Deployment:
    existing = Deployment.objects.filter(release=release, environment=environment).exclude(state=State.FINISHED).first()
    if existing is None:
        raise ValidationError("The deployment changed while it was being requested; try again.")
    return existing


def deployment_start(deployment: Deployment) -> None:
    """Queue the upload (or, for a project that publishes through its GitHub
    workflow, the dispatch), once the release is built (else the build starts it)."""
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


def deployment_fail(deployment: Deployment, reason: str, *, actor: Actor = None) -> Deployment | None:
    """End an active deployment as failed, with why; None if it had already ended."""
    return transition(
        deployment, State.FINISHED, outcome=Outcome.FAILED, reason=reason, actor=actor, expect=Deployment.ACTIVE_STATES
    )


def deployment_cancel(deployment: Deployment, *, actor: Actor, reason: str = "") -> Deployment:
    """Cancel a deployment that has not started uploading; its queued jobs never run."""
    from_states = [State.PENDING_APPROVAL, State.APPROVED, State.QUEUED]
    with transaction.atomic():
        if deployment.jobs.filter(state=Job.State.RUNNING).exists():
            raise ValidationError("The upload has started; a running deployment cannot be cancelled.")
        cancelled = transition(
            deployment,
            State.FINISHED,
            outcome=Outcome.CANCELLED,
            reason=reason or "Cancelled.",
            actor=actor,
            expect=from_states,
        )
        if cancelled is None:
            raise ValidationError(f"This deployment is {deployment.label.lower()}; it can no longer be cancelled.")
        for job in deployment.jobs.filter(state=Job.State.QUEUED):
            job_cancel(job, reason=f"Deployment #{deployment.pk} was cancelled.")
    return deployment


def deployment_succeed(deployment: Deployment) -> Deployment | None:
    """The verify passed: the deployment succeeded, and its summary (what
    shipped) is written, once, with the move."""
    summary = shipped_summary(deployment)
    return transition(
        deployment,
        State.FINISHED,
        outcome=Outcome.SUCCEEDED,
        expect=[State.VERIFYING],
        changes={"summary": summary},
        data={"files": {name: f["sha256"] for name, f in summary["files"].items()}},
    )


def shipped_summary(deployment: Deployment) -> ShippedSummary:
    """What shipped: files with digests and where they are, the modules
    verified, step times, checks, the SBOM's size and the workflow run."""
    jobs = deployment.jobs.filter(state=Job.State.FINISHED).order_by("created_at")
    run = deployment.workflow_runs.filter(run_id__isnull=False).first()
    return {
        "version": deployment.release.version,
        "environment": deployment.environment.name,
        "index_url": deployment.environment.index_url,
        "files": {
            f.artifact.filename: {
                "sha256": f.artifact.sha256,
                "index_sha256": f.index_sha256,
                "size": f.artifact.size,
                "state": f.label,
                "url": f.url,
                "provenance": cast(FileProvenance, f.provenance or {}),
            }
            for f in deployment.files.select_related("artifact")
        },
        "modules": list(deployment.verified_modules),
        "steps": {j.kind: round(j.duration_seconds or 0, 2) for j in jobs},
        "checks": {c.name: {"passed": c.passed, "detail": c.detail} for c in deployment.checks.all()},
        "sbom_components": Sbom.objects.filter(release=deployment.release).values_list("components", flat=True).first(),
        "workflow": None
        if run is None
        else {
            "repository": run.repository,
            "workflow": run.workflow_file,
            "run_id": run.run_id,
            "html_url": run.html_url,
            "conclusion": run.conclusion,
        },
        "finished_at": timezone.now().isoformat(),
    }


def requester_may_cancel(deployment: Deployment, user: User) -> bool:
    """The person who asked, or an administrator, may cancel a request."""
    return user.is_superuser or (deployment.requested_by_id is not None and deployment.requested_by_id == user.pk)
