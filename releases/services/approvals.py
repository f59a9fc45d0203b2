"""Four-eyes rules for production pushes (DESIGN.md principle 7).

The rules are enforced in three places: database constraints on
``Approval``, ``approval_give`` here, and ``approvals_problem``, which the
upload task runs again right before the first byte leaves. Who may decide
is ``approval_eligibility``'s to say, for the page and for the click alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from releases.actors import Actor, is_service_account
from releases.models import APPROVE_PERMISSION, Approval, AuditAction, Deployment
from releases.services.audit import audit_record
from releases.services.deployments import (
    Blocker,
    deployment_cancel,
    deployment_start,
    index_rule_blockers,
    requester_may_cancel,
)
from releases.services.destinations import destination_changes
from releases.services.lifecycle import transition

logger = logging.getLogger(__name__)
State = Deployment.State
Outcome = Deployment.Outcome

# The environment no longer goes where the request recorded.
DESTINATION = "destination"
# The blocker a page answers with a way to verify, rather than a refusal.
SECOND_FACTOR = "second_factor"
# Refusals that say the person may not decide at all (403), rather than
# that the request moved on under them (409).
_FORBIDDEN = {"permission", "requester", "decided", SECOND_FACTOR}


class ApprovalRefused(Exception):
    """An approval or rejection the rules do not allow; nothing was recorded.

    ``forbidden`` is True when the person may not decide on this deployment
    at all (no permission, their own request, no second factor), False when
    the request is no longer open or the files changed under them.
    """

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.forbidden = forbidden


def artifact_digests(deployment: Deployment) -> list[str]:
    return sorted(deployment.release.artifacts.values_list("sha256", flat=True))


def can_approve(user: Actor) -> bool:
    # The service account never decides, whatever groups it was given by hand.
    return (
        isinstance(user, User) and user.is_active and not is_service_account(user) and user.has_perm(APPROVE_PERMISSION)
    )


def approvals_problem(deployment: Deployment) -> str | None:
    """Why ``deployment`` may not be uploaded now, or None when it may.

    Checked when approvals are given and again inside the upload task, just
    before the first byte leaves.
    """
    required = deployment.required_approvals
    if required == 0:
        return None
    if deployment.requested_by_id is None:
        # Nobody on record asked: "requester cannot approve" could not hold.
        return "The request has no requester on record; ask for the push again as a named person."
    digests = artifact_digests(deployment)
    destination = deployment.destination
    approvals = Approval.objects.filter(deployment=deployment).exclude(
        approver__username=settings.CONSOLE_SERVICE_ACCOUNT
    )
    if approvals.filter(decision=Approval.Decision.REJECT).exists():
        return "The push was rejected."
    needs_second_factor = deployment.environment.require_second_factor
    valid = {
        approval.approver_id
        for approval in approvals.filter(decision=Approval.Decision.APPROVE)
        if approval.digests == digests
        and approval.destination == destination
        and approval.approver_id != deployment.requested_by_id
        and (approval.second_factor or not needs_second_factor)
    }
    if len(valid) < required:
        return (
            f"{len(valid)} of {required} required approvals are valid for the files about to be uploaded "
            "(approvals by the requester, without a required second factor, or given for other files or "
            "another destination, do not count)."
        )
    return None


def approval_eligibility(deployment: Deployment, user: User, *, second_factor_verified: bool) -> list[Blocker]:
    """Why ``user`` may not decide on ``deployment`` now; empty when they may.

    The approval page offers the decision exactly when this is empty (and
    the way to a second factor when that alone is missing); ``approval_give``
    refuses with the first of these.
    """
    blockers = []
    if not can_approve(user):
        blockers.append(
            Blocker("permission", f"{user.get_username()} does not have the permission to approve deployments.")
        )
    if deployment.requested_by_id is None and deployment.required_approvals > 0:
        blockers.append(
            Blocker("no_requester", "Nobody on record asked for this push; it must be asked for again by a person.")
        )
    if deployment.requested_by_id == user.pk:
        blockers.append(Blocker("requester", "You requested this push; another person must approve it."))
    if deployment.state != State.PENDING_APPROVAL:
        blockers.append(
            Blocker("closed", f"This deployment is {deployment.label.lower()}; it no longer takes decisions.")
        )
    elif deployment.expires_at is not None and deployment.expires_at <= timezone.now():
        blockers.append(Blocker("expired", "This request has expired; ask for the push again."))
    if not deployment.release.is_built:
        blockers.append(Blocker("building", "The release is still building; there are no files to approve yet."))
    if Approval.objects.filter(deployment=deployment, approver=user).exists():
        blockers.append(Blocker("decided", "You have already decided on this deployment; each person decides once."))
    if deployment.environment.require_second_factor and not second_factor_verified:
        blockers.append(
            Blocker(
                SECOND_FACTOR,
                f"{deployment.environment.title} requires approvals in a session verified with a second factor; "
                "verify your one-time password first.",
            )
        )
    return blockers


def approve_blockers(deployment: Deployment) -> list[Blocker]:
    """What stands against approving (not rejecting) ``deployment``: the
    environment pointing elsewhere than when the push was asked for, and every
    upload rule of PyPI its files would break on the environment. The page
    offers "Approve" exactly when this is empty; a rejection is always open."""
    if deployment.state != State.PENDING_APPROVAL:
        return []
    changed = destination_changes(deployment)
    moved = [
        Blocker(
            DESTINATION,
            f"{deployment.environment.title} changed since this push was asked for: " + "; ".join(changed) + ". "
            "An approval is bound to where the files go; reject this request, and ask for the push again.",
        )
    ]
    return (moved if changed else []) + index_rule_blockers(deployment.release, deployment.environment)


def _refusal(
    deployment: Deployment, approver: User, decision: str, digests_seen: list[str], second_factor_verified: bool
) -> ApprovalRefused | None:
    """The first rule that ``approver`` deciding now would break, if any."""
    blockers = approval_eligibility(deployment, approver, second_factor_verified=second_factor_verified)
    if blockers:
        return ApprovalRefused(blockers[0].message, forbidden=blockers[0].code in _FORBIDDEN)
    if decision not in Approval.Decision.values:
        return ApprovalRefused(f"{decision!r} is not a decision: approve or reject.")
    rules = approve_blockers(deployment) if decision == Approval.Decision.APPROVE else []
    if rules:
        return ApprovalRefused(" ".join(b.message for b in rules))
    if sorted(digests_seen) != artifact_digests(deployment):
        return ApprovalRefused(
            "The files changed since the page you decided on was shown (their sha256 digests differ); "
            "review them again."
        )
    return None


def approval_give(
    deployment: Deployment,
    approver: User,
    decision: str,
    *,
    comment: str = "",
    digests_seen: Iterable[str],
    second_factor_verified: bool,
) -> Approval:
    """Record ``approver``'s decision on ``deployment``, bound to the digests they saw.

    1. Lock the deployment and check every rule; a refusal is itself
       audited (committed), then raised as ApprovalRefused.
    2. Store the approval with the current digests; the database refuses a
       second decision by one person, and a decision by the requester.
    3. A rejection ends the deployment. Once the required number of valid
       approvals is reached, it becomes approved, then queued, and the
       upload starts.
    """
    seen = sorted(str(d) for d in digests_seen)
    comment = comment.strip()[:5000]
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().select_related("environment", "release").get(pk=deployment.pk)
        refusal = _refusal(locked, approver, decision, seen, second_factor_verified)
        if refusal is not None:
            audit_record(
                actor=approver,
                action=AuditAction.APPROVAL_REFUSED,
                target=locked,
                release=locked.release,
                data={"decision": decision[:20], "reason": refusal.message, "digests_seen": seen},
            )
        else:
            approval = _store(locked, approver, decision, comment, seen, second_factor_verified)
            _advance(locked, approver, approval)
    if refusal is not None:
        raise refusal
    deployment.refresh_from_db()
    return approval


def _store(
    deployment: Deployment, approver: User, decision: str, comment: str, digests: list[str], second_factor: bool
) -> Approval:
    try:
        with transaction.atomic():
            approval = Approval.objects.create(
                deployment=deployment,
                approver=approver,
                requested_by_id=deployment.requested_by_id,
                decision=decision,
                comment=comment,
                digests=digests,
                destination=deployment.destination,
                second_factor=second_factor,
            )
    except IntegrityError:
        raise ApprovalRefused(
            "You have already decided on this deployment, or you requested it.", forbidden=True
        ) from None
    audit_record(
        actor=approver,
        action=AuditAction.APPROVAL_GIVEN if decision == Approval.Decision.APPROVE else AuditAction.APPROVAL_REJECTED,
        target=approval,
        release=deployment.release,
        data={
            "deployment": deployment.pk,
            "environment": deployment.environment.name,
            "version": deployment.release.version,
            "decision": decision,
            "comment": comment,
            "digests": digests,
            "destination": deployment.destination,
            "second_factor": second_factor,
        },
    )
    return approval


def _advance(deployment: Deployment, approver: User, approval: Approval) -> None:
    if approval.decision == Approval.Decision.REJECT:
        reason = f"Rejected by {approver.get_username()}" + (f": {approval.comment}" if approval.comment else ".")
        transition(deployment, State.FINISHED, outcome=Outcome.REJECTED, actor=approver, reason=reason)
        return
    if approvals_problem(deployment) is None:
        _queue(deployment, approver)


def _queue(deployment: Deployment, actor: Actor, data: dict[str, object] | None = None) -> None:
    approvers = sorted(
        Approval.objects.filter(deployment=deployment, decision=Approval.Decision.APPROVE).values_list(
            "approver__username", flat=True
        )
    )
    transition(deployment, State.APPROVED, actor=actor, data={"approvers": approvers, **(data or {})})
    transition(deployment, State.QUEUED, actor=actor)
    deployment_start(deployment)


def approval_bypass(deployment: Deployment, admin: User, *, reason: str) -> Deployment:
    """Let an administrator push without the required approvals.

    Refused unless ``APPROVALS_ADMIN_BYPASS`` is on (off by default). The
    deployment's required approvals drop to zero, which the upload task's
    check then sees, and the bypass is audited with the number it replaced.
    """
    if not settings.APPROVALS_ADMIN_BYPASS:
        raise ApprovalRefused("Administrators cannot bypass approvals on this console.", forbidden=True)
    if not (admin.is_active and admin.is_superuser):
        raise ApprovalRefused("Only an administrator can bypass approvals.", forbidden=True)
    reason = reason.strip()
    if not reason:
        raise ApprovalRefused("Say why the approvals are bypassed; the reason is kept in the audit trail.")
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().select_related("environment", "release").get(pk=deployment.pk)
        if locked.state != State.PENDING_APPROVAL:
            raise ApprovalRefused(f"This deployment is {locked.label.lower()}; nothing to bypass.")
        replaced = locked.required_approvals
        Deployment.objects.filter(pk=locked.pk).update(required_approvals=0)
        locked.required_approvals = 0
        audit_record(
            actor=admin,
            action=AuditAction.APPROVAL_BYPASSED,
            target=locked,
            release=locked.release,
            data={"required_approvals": replaced, "reason": reason[:2000], "environment": locked.environment.name},
        )
        _queue(locked, admin, {"bypassed": True})
    deployment.refresh_from_db()
    return deployment


def approvals_expire() -> list[int]:
    """End every pending request whose time ran out (called by the reaper)."""
    expired: list[int] = []
    due = Deployment.objects.filter(state=State.PENDING_APPROVAL, expires_at__lte=timezone.now())
    for deployment in due.select_related("environment"):
        hours = deployment.environment.request_ttl_hours
        moved = transition(
            deployment,
            State.FINISHED,
            outcome=Outcome.EXPIRED,
            reason=f"No decision within {hours} hours; the request expired. Ask for the push again.",
            expect=[State.PENDING_APPROVAL],
        )
        if moved is not None:
            expired.append(deployment.pk)
    if expired:
        logger.info("expired pending deployments %s", expired)
    return expired


def approval_cancel(deployment: Deployment, *, actor: User, reason: str = "") -> Deployment:
    """Cancel a request, by its requester or an administrator."""
    if not requester_may_cancel(deployment, actor):
        raise ApprovalRefused(
            "Only the person who asked, or an administrator, can cancel this request.", forbidden=True
        )
    try:
        return deployment_cancel(deployment, actor=actor, reason=reason or f"Cancelled by {actor.get_username()}.")
    except ValidationError as exc:
        raise ApprovalRefused(" ".join(exc.messages)) from None
