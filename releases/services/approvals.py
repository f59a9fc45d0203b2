"""Four-eyes rules for production pushes (DESIGN.md principle 7)."""

from __future__ import annotations

from releases.models import Approval, Deployment


def artifact_digests(deployment: Deployment) -> list[str]:
    return sorted(deployment.release.artifacts.values_list("sha256", flat=True))


def approvals_problem(deployment: Deployment) -> str | None:
    """Why ``deployment`` may not be uploaded now, or None when it may.

    Checked when approvals are given and again inside the upload task, just
    before the first byte leaves.
    """
    required = deployment.required_approvals
    if required == 0:
        return None
    digests = artifact_digests(deployment)
    approvals = Approval.objects.filter(deployment=deployment)
    if approvals.filter(decision=Approval.Decision.REJECT).exists():
        return "The push was rejected."
    valid = {
        approval.approver_id
        for approval in approvals.filter(decision=Approval.Decision.APPROVE)
        if approval.digests == digests and approval.approver_id != deployment.requested_by_id
    }
    if len(valid) < required:
        return (
            f"{len(valid)} of {required} required approvals are valid for the files about to be uploaded "
            "(approvals by the requester, or given for other files, do not count)."
        )
    return None
