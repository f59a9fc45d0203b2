"""The append-only, hash-chained, sealed audit trail (DESIGN.md principle 8).

Each event's hash is ``sha256(previous_hash + canonical_json(event))``,
where the canonical JSON has sorted keys, no spaces and UTF-8 text: anyone
can recompute it from an export. Its seal is ``HMAC-SHA256(key, hash)``
under the first key of ``AUDIT_CHAIN_KEYS``, a key that is not in the
database: whoever rewrites the table, even with this code in hand, cannot
recompute a seal. Appends lock the chain head row, so concurrent writers
queue instead of forking the chain; the caller's transaction carries the
event together with the change it records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
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


@dataclass(frozen=True)
class ChainKey:
    """One key of ``AUDIT_CHAIN_KEYS``; its id, stored with each seal, is derived from it."""

    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"release-console audit chain key id:" + self.secret).hexdigest()[:12]

    def seal(self, event_hash: str) -> str:
        return hmac.new(self.secret, event_hash.encode(), hashlib.sha256).hexdigest()


def chain_keys() -> list[ChainKey]:
    """The key ring, newest first: the first seals, every one verifies."""
    return [ChainKey(key.encode()) for key in settings.AUDIT_CHAIN_KEYS]


def seal_event(event: AuditEvent, previous_hash: str, key: ChainKey | None = None) -> None:
    """Link ``event`` after ``previous_hash``, hash it, and seal the hash."""
    key = key or chain_keys()[0]
    event.previous_hash = previous_hash
    event.hash = chain_hash(previous_hash, event_payload(event))
    event.seal_key_id = key.key_id
    event.seal = key.seal(event.hash)


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
    the hash covers what the database keeps; each hash is sealed with the
    chain key, which is not in the database."""
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        previous, next_id = head.last_hash, head.last_event_id
        key = chain_keys()[0]
        for event in drafts:
            next_id += 1
            event.id = next_id
            event.data = json.loads(canonical_json(_scrub(event.data or {})))
            seal_event(event, previous, key)
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


@dataclass(frozen=True)
class ChainWalk:
    """How far the chain verified: ``count`` events up to ``last_id``."""

    broken: BrokenLink | None
    # Whether every event was walked (a head that disagrees shows only then).
    completed: bool
    count: int = 0
    last_id: int = 0
    last_hash: str = GENESIS_HASH
    # How many events each key sealed, by key id, in the order first used.
    sealed_by: dict[str, int] = field(default_factory=dict)


# Called with each event's position (1-based) once the event itself has
# verified; a BrokenLink it returns ends the walk (a checkpoint that disagrees).
EventCheck = Callable[[int, AuditEvent], BrokenLink | None]


def _link_problem(event: AuditEvent, previous_id: int, previous_hash: str, ring: dict[str, ChainKey]) -> str | None:
    """What is wrong with one event, checked against the one before it; None when it holds.

    The link comes first (a deleted or inserted event shows there), then the
    seal over the hash recomputed from the content (a keyed hash: a changed
    event shows there, whatever was written in its ``hash``), then the
    stored hash itself.
    """
    if event.previous_hash != previous_hash:
        return (
            f"event #{event.pk} says the event before it had hash {event.previous_hash[:12]}…, "
            f"but the event before it (#{previous_id}) has {previous_hash[:12]}… "
            "(an event was deleted, inserted or reordered here)"
        )
    expected = chain_hash(previous_hash, event_payload(event))
    if not event.seal or not event.seal_key_id:
        if event.hash != expected:
            return f"event #{event.pk} does not match its hash (its content was changed)"
        return f"event #{event.pk} has no seal (it was added outside the console)"
    key = ring.get(event.seal_key_id)
    if key is None:
        return (
            f"event #{event.pk} is sealed with key {event.seal_key_id}, which AUDIT_CHAIN_KEYS does not hold "
            "(a key was taken out of the ring, or the seal is forged)"
        )
    if not hmac.compare_digest(event.seal, key.seal(expected)):
        return (
            f"event #{event.pk} does not match its seal, the keyed hash under key {key.key_id} "
            "(its content was changed, or the event forged, by someone without the audit chain key)"
        )
    if event.hash != expected:
        return f"event #{event.pk} does not match its hash (its content was changed)"
    return None


def _head_problem(previous_id: int, previous_hash: str) -> BrokenLink | None:
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.last_hash == previous_hash:
        return None
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


def audit_walk(events: Iterable[AuditEvent] | None = None, *, check: EventCheck | None = None) -> ChainWalk:
    """Walk the chain in id order, checking every link and seal; stop at the first broken one."""
    ring = {key.key_id: key for key in chain_keys()}
    sealed_by: Counter[str] = Counter()
    previous_hash, previous_id, count = GENESIS_HASH, 0, 0
    rows = events if events is not None else AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    for event in rows:
        problem = _link_problem(event, previous_id, previous_hash, ring)
        broken = BrokenLink(event.pk, problem) if problem else check(count + 1, event) if check else None
        if broken is not None:
            return ChainWalk(broken, False, count, previous_id, previous_hash, dict(sealed_by))
        count += 1
        sealed_by[event.seal_key_id] += 1
        previous_hash, previous_id = event.hash, event.pk
    broken = _head_problem(previous_id, previous_hash)
    return ChainWalk(broken, True, count, previous_id, previous_hash, dict(sealed_by))


def audit_verify_chain(events: Iterable[AuditEvent] | None = None) -> BrokenLink | None:
    """Walk the chain in id order; return the first broken link, or None."""
    return audit_walk(events).broken
