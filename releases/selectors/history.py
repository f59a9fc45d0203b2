"""The history page: every deployment ever, narrowed by the history form."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from releases.models import Approval, Deployment


def deployment_history(filters: dict[str, Any]) -> QuerySet[Deployment]:
    """Every deployment ever, newest first, narrowed by the history form's values."""
    approved = Approval.objects.filter(decision=Approval.Decision.APPROVE).select_related("approver")
    deployments = (
        Deployment.objects.select_related("release__project", "environment", "requested_by")
        .prefetch_related(Prefetch("approvals", queryset=approved, to_attr="approvals_granted"))
        .order_by("-created_at", "-id")
    )
    if filters.get("project"):
        deployments = deployments.filter(release__project=filters["project"])
    if filters.get("environment"):
        deployments = deployments.filter(environment=filters["environment"])
    if filters.get("status"):
        deployments = deployments.filter(status=filters["status"])
    if filters.get("requested_by"):
        deployments = deployments.filter(requested_by__username=filters["requested_by"])
    if filters.get("date_from"):
        deployments = deployments.filter(created_at__date__gte=filters["date_from"])
    if filters.get("date_to"):
        deployments = deployments.filter(created_at__date__lte=filters["date_to"])
    return deployments
