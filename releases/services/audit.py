"""The append-only, hash-chained audit trail (DESIGN.md principle 8).

Each event's hash is ``sha256(previous_hash + canonical_json(event))``,
where the canonical JSON has sorted keys, no spaces and UTF-8 text. Appends
lock the chain head row, so concurrent writers queue instead of forking the
chain; the caller's transaction carries the event together with the change
it records.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from releases.actors import Actor, person
from releases.models import AuditAction, AuditChainHead, AuditEvent, Release
from releases.redaction import redact

GENESIS_HASH = "0" * 64


def canonical_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_payload(event: AuditEvent) -> dict[str, Any]:
    """The fields the hash covers, in the form ``audit_export`` writes."""
    return {
        "id": event.pk,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "release_id": event.release_id,
        "data": event.data,
    }


def chain_hash(previous_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256((previous_hash + canonical_json(payload)).encode()).hexdigest()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def audit_record(
    *,
    actor: Actor,
    action: AuditAction,
    target: models.Model,
    data: dict[str, Any] | None = None,
    release: Release | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction."""
    user = person(actor)
    draft = AuditEvent(
        actor=user,
        actor_name=actor_name or (user.get_username() if user is not None else "system"),
        action=action,
        object_type=target._meta.model_name or type(target).__name__.lower(),
        object_id=str(target.pk),
        release=release,
        data=data or {},
        created_at=timezone.now(),
    )
    return audit_append([draft])[0]


def audit_append(drafts: list[AuditEvent]) -> list[AuditEvent]:
    """Append events, in order, to the chain: ids, previous hashes and hashes
    are given here, under the chain head's lock, so concurrent writers queue
    instead of forking the chain. Each row is written once, complete, and
    never updated. Data is redacted, and round-tripped through JSON so that
    the hash covers what the database keeps."""
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        previous, next_id = head.last_hash, head.last_event_id
        for event in drafts:
            next_id += 1
            event.id = next_id
            event.data = json.loads(canonical_json(_scrub(event.data or {})))
            event.previous_hash = previous
            event.hash = chain_hash(previous, event_payload(event))
            previous = event.hash
        if len(drafts) == 1:
            drafts[0].save(force_insert=True)
        else:
            AuditEvent.objects.bulk_create(drafts, batch_size=5000)
        if drafts:
            head.last_event_id, head.last_hash = next_id, previous
            head.save(update_fields=["last_event_id", "last_hash"])
    return drafts


@dataclass(frozen=True)
class BrokenLink:
    event_id: int | None
    problem: str


def audit_verify_chain(events: Iterator[AuditEvent] | None = None) -> BrokenLink | None:
    """Walk the chain in id order; return the first broken link, or None."""
    previous_hash = GENESIS_HASH
    previous_id = 0
    rows = events if events is not None else AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    for event in rows:
        if event.previous_hash != previous_hash:
            return BrokenLink(
                event.pk,
                f"event #{event.pk} says the event before it had hash {event.previous_hash[:12]}…, "
                f"but the event before it (#{previous_id}) has {previous_hash[:12]}… "
                "(an event was deleted, inserted or reordered here)",
            )
        expected = chain_hash(previous_hash, event_payload(event))
        if event.hash != expected:
            return BrokenLink(event.pk, f"event #{event.pk} does not match its hash (its content was changed)")
        previous_hash = event.hash
        previous_id = event.pk
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_hash != previous_hash:
        if previous_id > head.last_event_id:
            first_extra = head.last_event_id + 1
            return BrokenLink(
                first_extra,
                f"event #{first_extra} and after were added outside the console "
                f"(the last event the console wrote is #{head.last_event_id}, the chain ends at #{previous_id})",
            )
        return BrokenLink(
            head.last_event_id,
            f"the chain ends at #{previous_id} but its head names #{head.last_event_id} "
            "(events at the end were deleted, or an event was rewritten)",
        )
    return None
