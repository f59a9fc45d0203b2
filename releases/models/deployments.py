from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from releases.models.projects import Environment, Project
from releases.models.releases import Artifact, Release


class Deployment(models.Model):
    """A release sent to an environment.

    ``status`` says where it is; ``reason`` says why it ended the way it
    did. Only ``releases.services.deployments.deployment_transition``
    changes ``status``.
    """

    class Status(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        APPROVED = "approved", "Approved"
        QUEUED = "queued", "Queued"
        UPLOADING = "uploading", "Uploading"
        VERIFYING = "verifying", "Verifying"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    ACTIVE_STATUSES = (
        Status.PENDING_APPROVAL,
        Status.APPROVED,
        Status.QUEUED,
        Status.UPLOADING,
        Status.VERIFYING,
    )
    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED)

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    # The release's project, kept beside it so that the dashboard finds each
    # project's newest deployment to each environment through an index,
    # however long the history. Set from the release when saved; a release
    # never changes project.
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    status = models.CharField(max_length=20, choices=Status.choices, db_index=True)
    reason = models.TextField(blank=True, help_text="Why it ended as it did.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    required_approvals = models.PositiveSmallIntegerField(default=0, help_text="Copied from the environment.")
    expires_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("publish_deployment", "Can publish to an environment that needs no approval"),
            ("request_deployment", "Can request a push to an environment that needs approval"),
            ("approve_deployment", "Can approve or reject a push"),
        ]
        constraints = [
            # A double click, or two people at once, start one deployment.
            models.UniqueConstraint(
                fields=["release", "environment"],
                condition=Q(status__in=["pending_approval", "approved", "queued", "uploading", "verifying"]),
                name="deployment_one_active_per_environment",
            ),
        ]
        indexes = [
            models.Index(fields=["environment", "status", "-created_at"]),
            models.Index(fields=["requested_by", "-created_at"]),
            models.Index(fields=["project", "environment", "-id"], name="deployment_board_latest"),
            models.Index(
                fields=["project", "environment", "-id"],
                condition=Q(status="succeeded"),
                name="deployment_board_live",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.release} → {self.environment.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.project_id:  # a new deployment: its release decides
            self.project_id = self.release.project_id
        super().save(*args, **kwargs)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class Approval(models.Model):
    """One person's decision on a deployment, bound to the digests they saw."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approve"
        REJECT = "reject", "Reject"

    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Copied from the deployment so the database itself can refuse a
    # self-approval (a check constraint cannot look across tables).
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, choices=Decision.choices)
    comment = models.TextField(blank=True)
    digests = models.JSONField(help_text="Sorted sha256 digests of the artifacts approved.")
    second_factor = models.BooleanField(default=False, help_text="Given in a session verified with a second factor.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "approver"], name="approval_once_per_person"),
            models.CheckConstraint(
                condition=Q(requested_by__isnull=True) | ~Q(approver=F("requested_by")),
                name="approval_not_by_requester",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.approver} on {self.deployment}"


class DeploymentFile(models.Model):
    """What happened to one artifact in one deployment."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        UPLOADED = "uploaded", "Uploaded"
        SKIPPED = "skipped", "Already on the index (same sha256)"
        CONFLICT = "conflict", "Different file on the index"
        FAILED = "failed", "Failed"
        VERIFIED = "verified", "Installed and checked"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="files")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    message = models.TextField(blank=True)
    index_sha256 = models.CharField(max_length=64, blank=True)
    url = models.URLField(max_length=500, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["artifact__kind", "artifact__filename"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "artifact"], name="deployment_file_unique"),
        ]
