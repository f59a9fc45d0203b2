"""What a release brings in and how it fared after publication: its SBOM,
the known vulnerabilities of its components, the checks run on each
deployment, and download counts."""

from __future__ import annotations

from django.db import models

from releases.models.deployments import Deployment
from releases.models.projects import Project
from releases.models.releases import Release
from releases.models.severity import Severity


class Sbom(models.Model):
    """The CycloneDX JSON document of a release, stored whole, made once."""

    release = models.OneToOneField(Release, on_delete=models.PROTECT, related_name="sbom")
    document = models.JSONField()
    components = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    scanned_at = models.DateTimeField(null=True, blank=True, help_text="When the last scan completed.")
    scan_error = models.TextField(blank=True, help_text="Why the last scan did not complete.")

    def __str__(self) -> str:
        return f"SBOM of {self.release}"


class VulnerabilityFinding(models.Model):
    """A known vulnerability of one component of a release."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="findings")
    package = models.CharField(max_length=200)
    version = models.CharField(max_length=100)
    vuln_id = models.CharField(max_length=100)
    aliases = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)
    fixed_versions = models.JSONField(default=list, blank=True)
    found_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["package", "vuln_id"]
        constraints = [
            models.UniqueConstraint(fields=["release", "package", "version", "vuln_id"], name="finding_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.vuln_id} in {self.package} {self.version}"


class VulnerabilityAlert(models.Model):
    """A vulnerability that became known after a version shipped."""

    finding = models.OneToOneField(VulnerabilityFinding, on_delete=models.CASCADE, related_name="alert")
    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="vulnerability_alerts")
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_to = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"alert: {self.finding}"


class CheckResult(models.Model):
    """One post-publication check of one deployment, pass or fail with why."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=60)
    passed = models.BooleanField()
    detail = models.TextField(blank=True)
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="check_result_unique")]

    def __str__(self) -> str:
        return f"{self.name}: {'passed' if self.passed else 'failed'}"


class DownloadCount(models.Model):
    """Downloads of a project on one day, overall or by Python version."""

    class Category(models.TextChoices):
        OVERALL = "overall", "Overall"
        PYTHON_MINOR = "python_minor", "Python version"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="download_counts")
    date = models.DateField()
    category = models.CharField(max_length=20, choices=Category.choices)
    label = models.CharField(max_length=40, help_text="e.g. without_mirrors, or 3.12")
    downloads = models.PositiveBigIntegerField()

    class Meta:
        ordering = ["date", "label"]
        constraints = [
            models.UniqueConstraint(fields=["project", "date", "category", "label"], name="download_count_unique"),
        ]
