from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from releases.models.moving import Finishing
from releases.models.projects import Project


class Release(Finishing, models.Model):
    """One version of one project, built once from one ref and commit.

    Its build moves through ``state``; once ``finished``, ``outcome`` says
    whether it built and ``reason`` why not. Only
    ``releases.services.lifecycle.transition`` changes them.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Waiting to build"
        BUILDING = "building", "Building"
        FINISHED = "finished", "Finished"

    class Outcome(models.TextChoices):
        NONE = "", "—"
        BUILT = "built", "Built"
        FAILED = "failed", "Build failed"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="releases")
    version = models.CharField(max_length=100, help_text="Normalized PEP 440 version.")
    ref = models.CharField(max_length=250)
    commit = models.CharField(max_length=40, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.NONE, blank=True)
    reason = models.TextField(blank=True, help_text="Why the build failed.")
    warnings = models.JSONField(default=list, blank=True, help_text="What twine check warned of.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="release_unique_version"),
            models.CheckConstraint(
                condition=Q(state="finished", outcome__in=["built", "failed"]) | (~Q(state="finished") & Q(outcome="")),
                name="release_outcome_when_finished",
            ),
        ]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.project.name} {self.version}"

    @property
    def is_built(self) -> bool:
        return self.outcome == self.Outcome.BUILT

    @property
    def build_failed(self) -> bool:
        return self.outcome == self.Outcome.FAILED

    @property
    def is_building(self) -> bool:
        return self.state != self.State.FINISHED


class Artifact(models.Model):
    """One built file, stored immutably with its sha256."""

    class Kind(models.TextChoices):
        SDIST = "sdist", "Source distribution"
        WHEEL = "wheel", "Wheel"

    class Origin(models.TextChoices):
        BUILT = "built", "Built by the console"
        REPAIRED = "repaired", "Built by the console, repaired by auditwheel"
        COLLECTED = "collected", "Built on CI, collected by the console"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="artifacts")
    filename = models.CharField(max_length=300)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=500, help_text="Name in the artifact storage.")
    origin = models.CharField(max_length=10, choices=Origin.choices, default=Origin.BUILT)
    origin_detail = models.CharField(
        max_length=500, blank=True, help_text="Which file it was repaired from, or which CI run built it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # sdist first: it is uploaded first, so that an index never holds a
        # wheel without the source it came from.
        ordering = ["kind", "filename"]
        constraints = [models.UniqueConstraint(fields=["release", "filename"], name="artifact_unique_filename")]

    def __str__(self) -> str:
        return self.filename
