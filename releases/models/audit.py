from __future__ import annotations

import json

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """An append-only, hash-chained, sealed record of something that happened.

    ``hash`` is sha256 over ``previous_hash`` and the canonical JSON of this
    event; ``seal`` is HMAC-SHA256 of ``hash`` under the audit chain key
    ``seal_key_id`` names, a key kept outside the database
    (``releases.services.audit``). Rows are never updated or deleted: the
    database refuses it (migration ``0010_audit_append_only``).
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Kept even if the user is deleted.")
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=40)
    release = models.ForeignKey(
        "releases.Release", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    seal = models.CharField(max_length=64, blank=True, default="")
    seal_key_id = models.CharField(max_length=16, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.object_type}:{self.object_id}"

    @property
    def data_text(self) -> str:
        """The data as JSON, for pages."""
        return json.dumps(self.data, sort_keys=True, ensure_ascii=False)


class AuditChainHead(models.Model):
    """The single row locked by every append, so the chain never forks."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)
