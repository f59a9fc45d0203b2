"""Audit events: the newest ones for the dashboard, and the audit page's
filtered list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import QuerySet

from releases.models import AuditEvent


def audit_recent(limit: int = 12) -> list[AuditEvent]:
    return list(AuditEvent.objects.select_related("release__project").order_by("-id")[:limit])


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    object: str = ""
    release_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Audit events, newest first. ``object`` is ``type`` or ``type:id`` (e.g. ``deployment:12``)."""
    events = AuditEvent.objects.order_by("-id")
    if filters.actor:
        events = events.filter(actor_name__iexact=filters.actor)
    if filters.action:
        events = events.filter(action__startswith=filters.action)
    if filters.object:
        object_type, _, object_id = filters.object.partition(":")
        events = events.filter(object_type=object_type.strip().lower())
        if object_id.strip():
            events = events.filter(object_id=object_id.strip())
    if filters.release_id is not None:
        events = events.filter(release_id=filters.release_id)
    if filters.date_from:
        events = events.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        events = events.filter(created_at__date__lte=filters.date_to)
    return events
