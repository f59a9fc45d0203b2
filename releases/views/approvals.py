"""Approvals: the page an approver decides on, the list of what waits for
them, and cancelling a request. Every rule is checked again by the service."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET, require_POST

from releases.models import Approval, Deployment
from releases.selectors.approvals import approval_review, deployments_awaiting, deployments_requested_by
from releases.selectors.live import deployment_fingerprint
from releases.services.approvals import (
    SECOND_FACTOR,
    ApprovalRefused,
    approval_cancel,
    approval_eligibility,
    approval_give,
    approve_blockers,
    can_approve,
)
from releases.services.deployments import requester_may_cancel
from releases.services.second_factor import second_factor_enrolled
from releases.views.access import viewer_required
from releases.views.live import APPROVAL_POLL
from releases.views.second_factor import second_factor_fresh


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # viewer_required guarantees it
    return request.user


def _verified(request: HttpRequest) -> bool:
    # Verified with a second factor that still exists, within SECOND_FACTOR_MAX_AGE_HOURS.
    return second_factor_fresh(request)


def _deployment(deployment_id: int) -> Deployment:
    return get_object_or_404(
        Deployment.objects.select_related("release__project", "environment__requires_success_in", "requested_by"),
        pk=deployment_id,
    )


@viewer_required
@require_GET
def awaiting(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "releases/approvals/awaiting.html",
        {
            "deployments": list(deployments_awaiting(user)),
            "requested": list(deployments_requested_by(user)),
            "can_approve": can_approve(user),
        },
    )


def _approval_page(
    request: HttpRequest,
    deployment: Deployment,
    *,
    error: str = "",
    status: int = 200,
    template: str = "releases/approvals/approval.html",
) -> HttpResponse:
    user = _user(request)
    review = approval_review(deployment)
    verified = _verified(request)
    blockers = approval_eligibility(deployment, user, second_factor_verified=verified)
    is_requester = deployment.requested_by_id == user.pk
    return render(
        request,
        template,
        {
            "deployment": deployment,
            "poll": APPROVAL_POLL,
            "review": review,
            "error": error,
            # The decision is offered exactly when the service would take it.
            "can_decide": not blockers,
            # A second factor is all that is missing: show the way to it.
            "needs_second_factor": [b.code for b in blockers] == [SECOND_FACTOR],
            "blockers": blockers,
            # PyPI's upload rules stand against approving these files, not against rejecting them.
            "approve_blockers": approve_blockers(deployment) if not blockers else [],
            "is_requester": is_requester,
            "decided": any(a.approver_id == user.pk for a in review.approvals),
            "can_cancel": deployment.awaits_approval and requester_may_cancel(deployment, user),
            "enrolled": second_factor_enrolled(user),
            "valid_approvals": sum(
                1 for a in review.approvals if a.decision == Approval.Decision.APPROVE and a.digests == review.digests
            ),
        },
        status=status,
    )


@viewer_required
@require_GET
def approval(request: HttpRequest, deployment_id: int) -> HttpResponse:
    return _approval_page(request, _deployment(deployment_id))


@viewer_required
@require_GET
def approval_live(request: HttpRequest, deployment_id: int) -> HttpResponseBase:
    """The part of the approval page that follows the push (htmx polls it
    while the deployment moves). Once it has moved past what the page showed,
    the whole page is loaded again: its decision form may no longer apply."""
    deployment = _deployment(deployment_id)
    if request.GET.get("since", deployment.label_key) != deployment.label_key:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    etag = quote_etag(deployment_fingerprint(deployment))
    unchanged = get_conditional_response(request, etag=etag)
    if unchanged is not None:
        return unchanged
    response = _approval_page(request, deployment, template="releases/approvals/partials/approval_live.html")
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@viewer_required
@require_POST
def approval_decide(request: HttpRequest, deployment_id: int) -> HttpResponse:
    """Approve or reject, bound to the digests the page showed (posted back)."""
    user = _user(request)
    deployment = _deployment(deployment_id)
    decision = request.POST.get("decision", "")
    if decision not in Approval.Decision.values:
        return HttpResponseBadRequest("Choose approve or reject.")
    comment = request.POST.get("comment", "")
    if len(comment) > 5000:
        return HttpResponseBadRequest("The comment is longer than 5000 characters.")
    try:
        approval_give(
            deployment,
            user,
            decision,
            comment=comment,
            digests_seen=request.POST.getlist("digest"),
            second_factor_verified=_verified(request),
        )
    except ApprovalRefused as refused:
        deployment.refresh_from_db()
        return _approval_page(request, deployment, error=refused.message, status=403 if refused.forbidden else 409)
    verb = "approved" if decision == Approval.Decision.APPROVE else "rejected"
    messages.success(request, f"You {verb} the push of {deployment.release} to {deployment.environment.title}.")
    return redirect("releases:approval", deployment_id=deployment.pk)


@viewer_required
@require_POST
def approval_cancel_view(request: HttpRequest, deployment_id: int) -> HttpResponse:
    user = _user(request)
    deployment = _deployment(deployment_id)
    try:
        approval_cancel(deployment, actor=user, reason=request.POST.get("reason", "")[:1000])
    except ApprovalRefused as refused:
        return _approval_page(request, deployment, error=refused.message, status=403 if refused.forbidden else 409)
    messages.success(request, f"The push of {deployment.release} to {deployment.environment.title} was cancelled.")
    return redirect("releases:approval", deployment_id=deployment.pk)
