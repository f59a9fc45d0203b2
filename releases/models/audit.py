from __future__ import annotations

import json

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    """Every kind of event the audit trail records: ``<thing>.<what happened>``.

    A lifecycle move records ``<thing>.<new state>`` or, when it finishes,
    ``<thing>.<outcome>`` (``releases.services.lifecycle``).
    """

    RELEASE_CREATED = "release.created", "Release created"
    RELEASE_BUILDING = "release.building", "Build started"
    RELEASE_BUILT = "release.built", "Release built"
    RELEASE_FAILED = "release.failed", "Build failed"
    RELEASE_SBOM_RECORDED = "release.sbom_recorded", "SBOM recorded"
    RELEASE_SCANNED = "release.scanned", "Vulnerability scan"

    DEPLOYMENT_REQUESTED = "deployment.requested", "Deployment requested"
    DEPLOYMENT_APPROVED = "deployment.approved", "Deployment approved"
    DEPLOYMENT_QUEUED = "deployment.queued", "Deployment queued"
    DEPLOYMENT_UPLOADING = "deployment.uploading", "Upload started"
    DEPLOYMENT_VERIFYING = "deployment.verifying", "Verification started"
    DEPLOYMENT_SUCCEEDED = "deployment.succeeded", "Deployment succeeded"
    DEPLOYMENT_FAILED = "deployment.failed", "Deployment failed"
    DEPLOYMENT_REJECTED = "deployment.rejected", "Deployment rejected"
    DEPLOYMENT_CANCELLED = "deployment.cancelled", "Deployment cancelled"
    DEPLOYMENT_EXPIRED = "deployment.expired", "Request expired"

    FILE_ON_INDEX = "file.on_index", "File on the index"
    FILE_VERIFIED = "file.verified", "File installed and checked"
    FILE_STOPPED = "file.stopped", "File not sent"
    FILE_HANDED_OUT = "file.handed_out", "File downloaded by the publishing workflow"

    JOB_RUNNING = "job.running", "Job started"
    JOB_QUEUED = "job.queued", "Job queued again"
    JOB_SUCCEEDED = "job.succeeded", "Job succeeded"
    JOB_FAILED = "job.failed", "Job failed"
    JOB_CANCELLED = "job.cancelled", "Job cancelled"

    WEBHOOK_DONE = "webhook.done", "Webhook processed"
    WEBHOOK_IGNORED = "webhook.ignored", "Webhook ignored"
    WEBHOOK_FAILED = "webhook.failed", "Webhook work failed"

    APPROVAL_GIVEN = "approval.given", "Approval given"
    APPROVAL_REJECTED = "approval.rejected", "Push rejected"
    APPROVAL_REFUSED = "approval.refused", "Decision refused"
    APPROVAL_BYPASSED = "approval.bypassed", "Approvals bypassed"

    PROJECT_CREATED = "project.created", "Project created"
    PROJECT_CHANGED = "project.changed", "Project changed"
    ENVIRONMENT_CREATED = "environment.created", "Environment created"
    ENVIRONMENT_CHANGED = "environment.changed", "Environment changed"
    CREDENTIAL_CREATED = "credential.created", "Credential created"
    CREDENTIAL_CHANGED = "credential.changed", "Credential changed"
    CREDENTIAL_REPLACED = "credential.replaced", "Credential replaced"
    CREDENTIALS_KEY_ROTATED = "credentials.key_rotated", "Key ring rotated"

    CHANGE_REQUESTED = "change_request.requested", "Change requested (waits for a second admin)"
    CHANGE_APPLIED = "change_request.applied", "Change request approved and applied"
    CHANGE_REFUSED = "change_request.refused", "Change request refused"
    CHANGE_CANCELLED = "change_request.cancelled", "Change request cancelled"
    CHANGE_FAILED = "change_request.failed", "Change request could not be applied"
    CHANGE_DECISION_REFUSED = "change_request.decision_refused", "Decision on a change request refused"

    PERSON_CREATED = "person.created", "Person added"
    PERSON_CHANGED = "person.changed", "Person changed"
    PERSON_DELETED = "person.deleted", "Person deleted"
    PASSWORD_CHANGED = "person.password_changed", "Password changed"
    PASSWORD_RESET = "person.password_reset", "Password reset"
    PERSON_CHANGE_REFUSED = "person.change_refused", "Change to a person refused"

    ROLE_ASSIGNED = "role.assigned", "Role assigned"
    ROLE_REMOVED = "role.removed", "Role removed"
    SECOND_FACTOR_ENROLLED = "second_factor.enrolled", "Second factor enrolled"
    SECOND_FACTOR_FAILED = "second_factor.failed", "Second factor failed"
    SECOND_FACTOR_RESET = "second_factor.reset", "Second factor reset"
    SECOND_FACTOR_DEVICE_REMOVED = "second_factor.device_removed", "Second factor device removed"
    SECOND_FACTOR_RECOVERY_CODES_REPLACED = "second_factor.recovery_codes_replaced", "Recovery codes replaced"
    SECOND_FACTOR_CHANGE_REFUSED = "second_factor.change_refused", "Second factor change refused"
    LOGIN_FAILED = "auth.login_failed", "Sign-in failed"

    WORKFLOW_DISPATCHED = "workflow.dispatched", "Workflow dispatched"
    WORKFLOW_COMPLETED = "workflow.completed", "Workflow run completed"


class AuditEvent(models.Model):
    """An append-only, hash-chained, sealed record of something that happened.

    ``hash`` is sha256 over ``previous_hash`` and the canonical JSON of this
    event; ``seal`` is HMAC-SHA256 of ``hash`` under the audit chain key
    ``seal_key_id`` names, a key kept outside the database
    (``releases.services.audit``). Rows are never updated or deleted: the
    database refuses it (migration ``0012_audit_append_only``).
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text="Kept even if the user is deleted.")
    # Events written before the enum keep their words; new ones use it.
    action = models.CharField(max_length=60, db_index=True, choices=AuditAction.choices)
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
