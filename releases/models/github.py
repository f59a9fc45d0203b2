from __future__ import annotations

from django.db import models
from django.db.models import Q

from releases.models.deployments import Deployment
from releases.models.moving import Finishing
from releases.models.projects import Project
from releases.models.releases import Release


class WorkflowRun(models.Model):
    """A GitHub Actions run that a deployment dispatched and tracks.

    The row is written before the dispatch, with no ``run_id``: while it
    waits for its run, no other dispatch of the same workflow may start
    (one such row per workflow), so two dispatches close together can never
    take each other's runs. ``run_id`` is unique: a run is adopted once.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="workflow_runs")
    repository = models.CharField(max_length=200)
    workflow_file = models.CharField(max_length=200)
    head_sha = models.CharField(max_length=40, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    dispatched_at = models.DateTimeField()
    run_id = models.BigIntegerField(null=True, blank=True, unique=True)
    html_url = models.URLField(max_length=500, blank=True)
    status = models.CharField(max_length=30, blank=True, help_text="GitHub's status: queued, in_progress, completed…")
    conclusion = models.CharField(max_length=30, blank=True, help_text="success, failure, cancelled…")
    jobs = models.JSONField(default=list, blank=True, help_text="The run's jobs and their steps.")
    late_events = models.PositiveIntegerField(
        default=0, help_text="workflow_run events ignored because they would have moved the run backwards."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-dispatched_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["repository", "workflow_file"],
                condition=Q(run_id__isnull=True),
                name="workflow_run_one_dispatch_finding_its_run",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.repository} {self.workflow_file} run {self.run_id or '(not found yet)'}"

    @property
    def is_completed(self) -> bool:
        return self.status == "completed"


class WebhookDelivery(Finishing, models.Model):
    """One request to the GitHub webhook endpoint, kept for admins.

    A refused request is stored once per address and WEBHOOK_REFUSAL_WINDOW
    (without its body); the address's later refusals in that window are
    only counted on it (``repeats``). An accepted delivery that has work (a release tag, a workflow run) is
    ``queued`` until its job has run; every other delivery is ``finished``
    when it is written.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Accepted, work queued"
        FINISHED = "finished", "Finished"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        DONE = "done", "Accepted, done"
        IGNORED = "ignored", "Accepted, ignored"
        DUPLICATE = "duplicate", "Delivery seen before"
        REFUSED = "refused", "Refused"
        FAILED = "failed", "Accepted, the work failed"

    delivery_id = models.CharField(max_length=100, blank=True, help_text="X-GitHub-Delivery")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    project_name = models.CharField(max_length=200, help_text="As written in the URL.")
    event = models.CharField(max_length=100, blank=True, help_text="X-GitHub-Event")
    action = models.CharField(max_length=100, blank=True)
    accepted = models.BooleanField(default=False, help_text="Signed with the project's secret and processed.")
    status_code = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.FINISHED)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE, blank=True)
    reason = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body_size = models.PositiveIntegerField(default=0)
    address = models.CharField(max_length=64, blank=True, help_text="The address it came from.")
    repeats = models.PositiveIntegerField(
        default=0,
        help_text="Refused deliveries from the same address after this one, within WEBHOOK_REFUSAL_WINDOW: "
        "counted here, not stored.",
    )
    payload = models.JSONField(null=True, blank=True, help_text="Kept for accepted deliveries only.")
    release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["address", "-received_at"],
                condition=Q(outcome="refused"),
                name="webhook_delivery_refused_idx",
            )
        ]
        constraints = [
            # A redelivery is answered, never processed twice. Refused
            # requests do not count, so nobody can burn a delivery id early.
            models.UniqueConstraint(
                fields=["delivery_id"],
                condition=Q(accepted=True),
                name="webhook_delivery_accepted_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event or '?'} {self.delivery_id or '(no id)'} → {self.status_code}"
