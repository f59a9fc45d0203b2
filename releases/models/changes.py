from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from releases.models.moving import Finishing

# The permission behind deciding on a change request (the admin role).
DECIDE_CHANGE_PERMISSION = "releases.decide_changerequest"


class ChangeRequest(Finishing, models.Model):
    """A change that lowers protection, or touches people, waiting for a
    second administrator (DESIGN.md principle 10).

    The requester never decides it (the database refuses it too), nor does
    the person a people change is about. ``changes`` holds each field's value
    before and after, as the audit trail keeps them; ``values`` what is
    written when it is applied (ids, never a secret). Only
    ``releases.services.lifecycle.transition`` moves it.
    """

    class Kind(models.TextChoices):
        ENVIRONMENT = "environment", "Lower an environment's protection"
        ROLE = "role", "Give a person a role"
        PERSON = "person", "Change another person's account"
        PASSWORD_RESET = "password_reset", "Reset another person's password"
        SECOND_FACTOR_RESET = "second_factor_reset", "Reset another person's second factor"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        FINISHED = "finished", "Finished"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        APPLIED = "applied", "Applied"
        REFUSED = "refused", "Refused"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Could not be applied"

    kind = models.CharField(max_length=30, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE, blank=True)
    reason = models.TextField(blank=True)
    # What it is about: an environment's or a person's id and name.
    target_type = models.CharField(max_length=20)
    target_id = models.BigIntegerField()
    target_name = models.CharField(max_length=150)
    changes = models.JSONField(default=dict, help_text="Each field's value before and after, as audited.")
    values = models.JSONField(default=dict, help_text="What is written when applied (ids, never a secret).")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("decide_changerequest", "Can approve or refuse another administrator's change request")]
        constraints = [
            models.CheckConstraint(
                condition=Q(requested_by__isnull=True) | Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="change_request_not_decided_by_requester",
            ),
            models.CheckConstraint(
                condition=Q(state="finished", outcome__in=["applied", "refused", "cancelled", "failed"])
                | (~Q(state="finished") & Q(outcome="")),
                name="change_request_outcome_when_finished",
            ),
            # One open request per thing and kind: a second one replaces nothing silently.
            models.UniqueConstraint(
                fields=["kind", "target_type", "target_id"],
                condition=Q(state="pending") & ~Q(kind="role"),
                name="change_request_one_pending_per_target",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()}: {self.target_name}"

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING
