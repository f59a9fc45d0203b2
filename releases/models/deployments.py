from __future__ import annotations

from typing import Any, TypedDict

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from releases.models.moving import Finishing
from releases.models.projects import Environment, Project
from releases.models.releases import Artifact, Release

# The permissions behind the roles' actions (releases.services.roles).
PUBLISH_PERMISSION = "releases.publish_deployment"
REQUEST_PERMISSION = "releases.request_deployment"
APPROVE_PERMISSION = "releases.approve_deployment"


class FileProvenance(TypedDict, total=False):
    """``DeploymentFile.provenance``: what the index's PEP 740 provenance says of a file."""

    signed: bool  # attested and verified
    repository: str  # the repository that built and published it
    workflow: str
    commit: str
    detail: str  # what was found, in a sentence
    passed: bool  # signed by the project's repository at the release's commit (or not required)


class ShippedFile(TypedDict):
    sha256: str  # the console's build
    index_sha256: str  # what the index served when verified
    size: int
    state: str
    url: str
    provenance: FileProvenance


class ShippedCheck(TypedDict):
    passed: bool
    detail: str


class ShippedWorkflow(TypedDict):
    repository: str
    workflow: str
    run_id: int | None
    html_url: str
    conclusion: str


class Destination(TypedDict):
    """``Deployment.destination``: where a push goes and under which rules,
    recorded when it is asked for; approvals are bound to it, and the upload
    refuses to start when the environment says anything else by then."""

    environment: str
    upload_url: str
    index_url: str
    credential_id: int | None
    credential_username: str
    # sha256 over the credential's user name and plain token, made when the
    # push was asked for (never the token): another token shows here.
    credential_fingerprint: str
    required_approvals: int
    require_second_factor: bool
    publish_mode: str
    workflow_environment: str
    github_repository: str
    workflow_file: str


class ShippedSummary(TypedDict):
    """``Deployment.summary``: what shipped, written once when it succeeds."""

    version: str
    environment: str
    index_url: str
    files: dict[str, ShippedFile]
    modules: list[str]
    steps: dict[str, float]
    checks: dict[str, ShippedCheck]
    sbom_components: int | None
    workflow: ShippedWorkflow | None
    finished_at: str


class Deployment(Finishing, models.Model):
    """A release sent to an environment.

    ``state`` says where it is; once ``finished``, ``outcome`` says how it
    ended and ``reason`` why. Only ``releases.services.lifecycle.transition``
    changes them, by the table there.
    """

    class State(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        APPROVED = "approved", "Approved"
        QUEUED = "queued", "Queued"
        UPLOADING = "uploading", "Uploading"
        VERIFYING = "verifying", "Verifying"
        FINISHED = "finished", "Finished"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    # Where a deployment is while it moves: every state but FINISHED.
    ACTIVE_STATES = (State.PENDING_APPROVAL, State.APPROVED, State.QUEUED, State.UPLOADING, State.VERIFYING)
    # Moving without waiting for a person: the release page follows these live.
    RUNNING_STATES = (State.APPROVED, State.QUEUED, State.UPLOADING, State.VERIFYING)

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    # The release's project, kept beside it so that the dashboard finds each
    # project's newest deployment to each environment through an index,
    # however long the history. Set from the release when saved; a release
    # never changes project.
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+", editable=False)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    state = models.CharField(max_length=20, choices=State.choices, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE, blank=True)
    reason = models.TextField(blank=True, help_text="Why it ended as it did.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    required_approvals = models.PositiveSmallIntegerField(default=0, help_text="Copied from the environment.")
    destination = models.JSONField(
        default=dict, blank=True, help_text="Where it goes, recorded when asked for (Destination)."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    verified_modules = models.JSONField(default=list, blank=True, help_text="The modules verify imported.")
    summary = models.JSONField(
        default=dict, blank=True, help_text="What shipped (DeploymentSummary), written once when it succeeds."
    )
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
                condition=~Q(state="finished"),
                name="deployment_one_active_per_environment",
            ),
            models.CheckConstraint(
                condition=Q(state="finished", outcome__in=["succeeded", "failed", "rejected", "cancelled", "expired"])
                | (~Q(state="finished") & Q(outcome="")),
                name="deployment_outcome_when_finished",
            ),
            # Four eyes need two people: a push that waits for approval has
            # a person on record who asked (whom the approval table then
            # refuses as approver). Migration 0019 adds it on PostgreSQL, NOT
            # VALID: a request open from before may still end.
            models.CheckConstraint(
                condition=Q(required_approvals=0) | Q(requested_by__isnull=False) | Q(state="finished"),
                name="deployment_approval_needs_requester",
            ),
        ]
        indexes = [
            models.Index(fields=["environment", "state", "-created_at"], name="deployment_environment_state"),
            models.Index(fields=["requested_by", "-created_at"]),
            models.Index(fields=["project", "environment", "-id"], name="deployment_board_latest"),
            models.Index(
                fields=["project", "environment", "-id"],
                condition=Q(outcome="succeeded"),
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
        return self.state != self.State.FINISHED

    @property
    def succeeded(self) -> bool:
        return self.outcome == self.Outcome.SUCCEEDED

    @property
    def awaits_approval(self) -> bool:
        return self.state == self.State.PENDING_APPROVAL


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
    destination = models.JSONField(
        default=dict, blank=True, help_text="The deployment's destination this approval was given for."
    )
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
        return f"{self.decided_as} by {self.approver} on {self.deployment}"

    @property
    def decided_as(self) -> str:
        """The decision as pages say it: "Approved" or "Rejected" (by someone)."""
        return "Approved" if self.decision == self.Decision.APPROVE else "Rejected"


class DeploymentFile(models.Model):
    """What happened to one artifact in one deployment: where it is
    (``state``) and how it got there or stopped (``outcome``)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ON_INDEX = "on_index", "On the index"
        VERIFIED = "verified", "Installed and checked"
        STOPPED = "stopped", "Not sent"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        UPLOADED = "uploaded", "Uploaded"
        SKIPPED = "skipped", "Already on the index (same sha256)"
        CONFLICT = "conflict", "Different file on the index"
        FAILED = "failed", "Failed"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="files")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE, blank=True)
    reason = models.TextField(blank=True)
    index_sha256 = models.CharField(max_length=64, blank=True)
    url = models.URLField(max_length=500, blank=True)
    provenance = models.JSONField(
        default=dict, blank=True, help_text="What the index's provenance (PEP 740) says of it (FileProvenance)."
    )
    handed_out_at = models.DateTimeField(
        null=True, blank=True, help_text="When the project's workflow downloaded it for Trusted Publishing (once)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["artifact__kind", "artifact__filename"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "artifact"], name="deployment_file_unique"),
        ]

    @property
    def label(self) -> str:
        if self.state in (self.State.PENDING, self.State.VERIFIED):
            return self.get_state_display()
        return self.get_outcome_display()

    @property
    def label_key(self) -> str:
        return self.state if self.state in (self.State.PENDING, self.State.VERIFIED) else self.outcome
