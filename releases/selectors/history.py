"""The history page: every deployment ever, narrowed by the history form."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from releases.models import Approval, Deployment

# The history form's fields, and what each narrows.
FILTERS = {
    "project": "project",
    "environment": "environment",
    "requested_by": "requested_by__username",
    "date_from": "created_at__date__gte",
    "date_to": "created_at__date__lte",
}


def deployment_history(filters: dict[str, Any]) -> QuerySet[Deployment]:
    """Every deployment ever, newest first, narrowed by the history form's values."""
    approved = Approval.objects.filter(decision=Approval.Decision.APPROVE).select_related("approver")
    deployments = (
        Deployment.objects.select_related("release__project", "environment", "requested_by")
        .prefetch_related(Prefetch("approvals", queryset=approved, to_attr="approvals_given"))
        .order_by("-created_at", "-id")
    )
    narrowed = {lookup: filters[name] for name, lookup in FILTERS.items() if filters.get(name)}
    status = filters.get("status")
    if status:  # a state, or an outcome of the finished ones
        deployments = deployments.filter(Q(state=status) | Q(state=Deployment.State.FINISHED, outcome=status))
    return deployments.filter(**narrowed)
