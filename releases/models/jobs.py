from __future__ import annotations

from django.db import models
from django.utils import timezone

from releases.models.deployments import Deployment
from releases.models.moving import Finishing
from releases.models.releases import Release


class Job(Finishing, models.Model):
    """One unit of worker work, with its log.

    ``state`` says where it is (queued, running, finished); ``outcome`` says
    how it ended. A worker claims a job with a conditional update on
    ``state`` and proves it still owns it through ``attempts``.
    """

    class Kind(models.TextChoices):
        BUILD = "build", "Build"
        COLLECT = "collect", "Collect CI wheels"
        UPLOAD = "upload", "Upload"
        VERIFY = "verify", "Verify"
        DISPATCH = "dispatch", "Dispatch workflow"
        TRACK = "track", "Track workflow run"
        SCAN = "scan", "Scan"
        WEBHOOK = "webhook", "Webhook delivery"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    delivery = models.ForeignKey(
        "releases.WebhookDelivery", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE, blank=True)
    reason = models.TextField(blank=True, help_text="Why it failed, in words a person can act on.")
    step = models.CharField(max_length=200, blank=True, help_text="What it is doing now.")
    attempts = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=50, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # When it began waiting (created, or queued again after a lost worker):
    # what the dashboard's oldest wait is measured from.
    queued_at = models.DateTimeField(auto_now_add=True)
    # When its id was last sent to the workers: the reaper sends again what
    # waited too long since, and leaves ``queued_at`` alone.
    sent_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    log_lines = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"]),
            models.Index(fields=["release", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} job #{self.pk}"

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return (end - self.started_at).total_seconds()


class Worker(models.Model):
    """A worker process that is, or was lately, alive: it writes ``seen_at``
    every ``WORKER_HEARTBEAT_INTERVAL`` seconds while it runs, and removes its
    row when it stops. A row gone silent is a host that died."""

    name = models.CharField(max_length=200, unique=True, help_text="Celery's node name, e.g. celery@host-a.")
    hostname = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JobLogLine(models.Model):
    """One line of a job's output, redacted before it was written."""

    # No index of its own: the unique (job, number) index serves every
    # lookup by job, and with a second one PostgreSQL may pick it for the
    # log tail and sort all of a long job's lines instead of reading the
    # last 200 backwards.
    # No foreign key constraint in the database either: PostgreSQL checks
    # it with a query for every line stored, half of what storing a line
    # costs it. Lines are written only by the log of a job its worker has
    # claimed (the claim is checked with every batch), jobs are history that
    # nothing deletes, and a deletion through Django still takes the lines.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False)
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField()
    text = models.TextField()

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="job_log_line_unique")]
