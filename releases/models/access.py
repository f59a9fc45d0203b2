from __future__ import annotations

from django.db import models


class FailureTally(models.Model):
    """Failures of one kind (a sign-in, a second factor) for one username from
    one address that the audit trail has not yet been told about.

    The first failure after a quiet interval is audited at once; later ones
    are counted here and reported together, at most once per
    FAILURE_AUDIT_INTERVAL (``releases.services.sign_in``), so that a
    password-guessing run cannot flood the trail.
    """

    action = models.CharField(max_length=60)
    username = models.CharField(max_length=150)
    address = models.CharField(max_length=64)
    unreported = models.PositiveIntegerField(default=0)
    first_unreported_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["action", "username", "address"], name="failure_tally_once_per_source")
        ]
        indexes = [models.Index(fields=["reported_at"], name="failure_tally_reported_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.username}@{self.address}: {self.unreported} unreported"
