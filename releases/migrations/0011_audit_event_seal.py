"""Seal the audit events written before the chain was keyed.

1. Add the seal columns, empty for the events already there.
2. Walk the existing chain under the plain sha256 rule it was written by.
   A chain that does not verify stops the upgrade with nothing changed,
   unless AUDIT_UPGRADE_ACCEPT_BROKEN_CHAIN is set: then only the events
   before the first broken link are sealed, and audit_verify goes on naming
   it.
3. Seal each verified event: HMAC-SHA256 of its hash under the first key of
   AUDIT_CHAIN_KEYS. The hashes themselves do not change, so a hash recorded
   elsewhere before the upgrade still names its event.

The rule, the payload and the key id are copied here as they are at this
point of the history: later changes to releases.services.audit must not
change what this migration did.
"""

import hashlib
import hmac
import json
import sys

from django.conf import settings
from django.core.management.base import CommandError
from django.db import migrations, models

GENESIS_HASH = "0" * 64
BATCH = 2000


def _plain_hash(previous_hash, event):
    payload = {
        "id": event.pk,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor_name,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "release_id": event.release_id,
        "data": event.data,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((previous_hash + canonical).encode()).hexdigest()


def _verify(AuditEvent, AuditChainHead):
    """The id of the last event that verifies, and the first problem (None when the chain holds)."""
    previous_hash, previous_id = GENESIS_HASH, 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=BATCH):
        if event.previous_hash != previous_hash:
            return previous_id, (
                f"event #{event.pk} does not follow the event before it (#{previous_id}): "
                "an event was deleted, inserted or reordered there"
            )
        if event.hash != _plain_hash(previous_hash, event):
            return previous_id, f"event #{event.pk} does not match its hash (its content was changed)"
        previous_hash, previous_id = event.hash, event.pk
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_hash != previous_hash:
        return previous_id, (
            f"the chain ends at #{previous_id} but its head names #{head.last_event_id} "
            "(events at the end were deleted, or added outside the console)"
        )
    return previous_id, None


def seal_existing_chain(apps, schema_editor):
    AuditEvent = apps.get_model("releases", "AuditEvent")
    AuditChainHead = apps.get_model("releases", "AuditChainHead")
    verified_up_to, problem = _verify(AuditEvent, AuditChainHead)
    if problem and not settings.AUDIT_UPGRADE_ACCEPT_BROKEN_CHAIN:
        raise CommandError(
            f"The audit chain does not verify: {problem}. The upgrade seals only a chain that verifies, "
            "and has changed nothing. Find out what happened first (python manage.py audit_export; your "
            "backups; docs/audit.md, 'Upgrading'). To upgrade anyway, run migrate once with "
            "AUDIT_UPGRADE_ACCEPT_BROKEN_CHAIN=true: the events before the break are sealed, the rest "
            "stay unsealed, and audit_verify goes on naming the break."
        )
    if problem:
        sys.stderr.write(f"\n  audit chain sealed up to #{verified_up_to} only: {problem}\n")
    key = settings.AUDIT_CHAIN_KEYS[0].encode()
    key_id = hashlib.sha256(b"release-console audit chain key id:" + key).hexdigest()[:12]
    last = 0
    while True:
        batch = list(AuditEvent.objects.filter(pk__gt=last, pk__lte=verified_up_to).order_by("pk")[:BATCH])
        if not batch:
            break
        for event in batch:
            event.seal_key_id = key_id
            event.seal = hmac.new(key, event.hash.encode(), hashlib.sha256).hexdigest()
        AuditEvent.objects.bulk_update(batch, ["seal", "seal_key_id"])
        last = batch[-1].pk


class Migration(migrations.Migration):

    dependencies = [
        ("releases", "0010_lifecycles_drop_old"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="seal",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="seal_key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(seal_existing_chain, migrations.RunPython.noop),
    ]
