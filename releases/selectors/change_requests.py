"""The change requests page: what waits for a second administrator, and what was decided lately."""

from __future__ import annotations

from django.db.models import QuerySet

from releases.models import ChangeRequest


def change_requests_pending() -> QuerySet[ChangeRequest]:
    return (
        ChangeRequest.objects.filter(state=ChangeRequest.State.PENDING)
        .select_related("requested_by")
        .order_by("created_at", "id")
    )


def change_requests_decided(limit: int = 50) -> list[ChangeRequest]:
    return list(
        ChangeRequest.objects.filter(state=ChangeRequest.State.FINISHED)
        .select_related("requested_by", "decided_by")
        .order_by("-decided_at", "-id")[:limit]
    )
