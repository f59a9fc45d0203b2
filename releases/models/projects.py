from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from releases.models.severity import BlockSeverity
from releases.validators import (
    clean_github_repository,
    clean_glob,
    clean_http_url,
    clean_project_name,
    clean_source,
    clean_subdirectory,
    clean_url_template,
    clean_workflow_file,
    field_errors,
)

MAX_APPROVALS = 10


class Credential(models.Model):
    """A secret (an index token, a GitHub token, a webhook secret).

    The value is stored only encrypted with the console's own key ring
    (``releases.services.credentials``); screens show ``last_four`` alone.
    """

    class Kind(models.TextChoices):
        INDEX_TOKEN = "index_token", "Package index token"
        GITHUB_TOKEN = "github_token", "GitHub token"
        WEBHOOK_SECRET = "webhook_secret", "Webhook secret"

    class Scope(models.TextChoices):
        PROJECT = "project", "Project-scoped"
        ACCOUNT = "account", "Account-wide"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.INDEX_TOKEN)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.PROJECT)
    username = models.CharField(max_length=100, default="__token__")
    encrypted_value = models.BinaryField(editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    def __str__(self) -> str:
        return f"{self.name} (…{self.last_four})"

    @property
    def scope_warning(self) -> str:
        """Shown beside an account-wide token wherever it is listed or edited."""
        if self.scope != self.Scope.ACCOUNT:
            return ""
        return (
            "Account-wide token: it can publish every project of the account, so a leak reaches all of them. "
            "Replace it with a token scoped to this project once the project exists on the index."
        )


class Project(models.Model):
    """A Python distribution the console releases."""

    class PublishMode(models.TextChoices):
        TWINE = "twine", "Upload from the console's workers"
        WORKFLOW = "workflow", "Dispatch the GitHub workflow"

    name = models.CharField(max_length=200, unique=True, help_text="Canonical (PEP 503) name.")
    source = models.CharField(max_length=500, help_text="A git URL or a local path to a git repository.")
    github_repository = models.CharField(max_length=200, blank=True, help_text="owner/name")
    github_api_url = models.URLField(default="https://api.github.com")
    workflow_file = models.CharField(max_length=200, default="publish.yml")
    workflow_inputs = models.JSONField(default=dict, blank=True)
    github_credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    webhook_secret = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    tag_pattern = models.CharField(max_length=100, default="v*.*.*")
    release_on_created = models.BooleanField(
        default=False, help_text="Also start a release on GitHub's 'created' action, not only 'published'."
    )
    publish_mode = models.CharField(max_length=10, choices=PublishMode.choices, default=PublishMode.TWINE)
    strict_checks = models.BooleanField(default=False, help_text="twine check warnings fail the build.")
    subdirectory = models.CharField(
        max_length=200,
        blank=True,
        help_text="Where the package is inside the repository (packages/core); empty: at its root.",
    )
    repair_wheels = models.BooleanField(
        default=True,
        help_text="Repair wheels with compiled code with auditwheel, so that they carry a manylinux tag PyPI accepts.",
    )
    wheels_workflow = models.CharField(
        max_length=200,
        blank=True,
        help_text="A GitHub workflow (wheels.yml) whose run on the release's commit builds the wheels: "
        "the console collects them beside its own sdist. Empty: the console's own wheel.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def publishes_through_workflow(self) -> bool:
        """Trusted Publishing: its workflow publishes the approved files, not the console's workers."""
        return self.publish_mode == self.PublishMode.WORKFLOW

    def clean(self) -> None:
        """What every path that writes a project must hold to (the services
        call it; the admin's forms show its messages beside each field)."""
        field_errors(
            {
                "name": lambda: _canonical(self.name),
                "source": lambda: clean_source(self.source),
                "github_repository": lambda: self.github_repository and clean_github_repository(self.github_repository),
                "github_api_url": lambda: clean_http_url(self.github_api_url),
                "workflow_file": lambda: clean_workflow_file(self.workflow_file),
                "workflow_inputs": lambda: _workflow_inputs(self.workflow_inputs),
                "tag_pattern": lambda: clean_glob(self.tag_pattern),
                "subdirectory": lambda: self.subdirectory and clean_subdirectory(self.subdirectory),
                "wheels_workflow": lambda: _wheels_workflow(self),
            }
        )


def _wheels_workflow(project: Project) -> None:
    if not project.wheels_workflow:
        return
    clean_workflow_file(project.wheels_workflow)
    if not project.github_repository:
        raise ValidationError("Wheels are collected from GitHub: set the project's repository (owner/name) too.")


def _canonical(name: str) -> None:
    canonical = clean_project_name(name)
    if canonical != name:
        raise ValidationError(f"Write the name as PyPI normalizes it: {canonical!r}.")


def _workflow_inputs(inputs: object) -> None:
    if not isinstance(inputs, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()):
        raise ValidationError("Workflow inputs are names and values, both text.")
    if "environment" in inputs:
        raise ValidationError("The 'environment' input comes from each environment's setting; leave it out here.")
    taken = sorted(set(inputs) & {"files", "files_url"})
    if taken:
        raise ValidationError(
            f"The {', '.join(repr(t) for t in taken)} input carries the approved files, from the console; leave it out here."
        )


class Environment(models.Model):
    """A target package index, with the rules for publishing to it."""

    name = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100, help_text="Shown on buttons, after 'Publish to'.")
    upload_url = models.URLField()
    index_url = models.URLField(help_text="The simple-index URL (PEP 503 / 691).")
    fallback_index_url = models.URLField(blank=True, help_text="Where dependencies come from during verify.")
    project_url_template = models.CharField(
        max_length=300, blank=True, help_text="e.g. https://pypi.org/project/{name}/{version}/"
    )
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    required_approvals = models.PositiveSmallIntegerField(default=0)
    requires_success_in = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="A release must have succeeded there first (promotion order).",
    )
    allowed_ref_pattern = models.CharField(
        max_length=100, blank=True, help_text="Glob the release's ref must match; empty allows any."
    )
    request_ttl_hours = models.PositiveIntegerField(default=7 * 24)
    require_second_factor = models.BooleanField(default=False)
    workflow_environment = models.CharField(
        max_length=50, blank=True, help_text="The 'environment' input given to the GitHub workflow."
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Order on the dashboard.")
    block_severity = models.CharField(
        max_length=10,
        choices=BlockSeverity.choices,
        default=BlockSeverity.NONE,
        help_text="Refuse a push when the release has a known vulnerability at or above this severity.",
    )
    pypi_rules = models.BooleanField(
        default=False,
        help_text="Check PyPI's upload rules before anything is sent (on by default for pypi.org and "
        "test.pypi.org addresses; off for private indexes, which take what PyPI refuses).",
    )
    index_account = models.CharField(
        max_length=100,
        blank=True,
        help_text="The index account the token belongs to (a PyPI username), for the rule that the "
        "project must be the account's; empty skips that rule.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="environment_name_ci_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def needs_approval(self) -> bool:
        return self.required_approvals > 0

    def clean(self) -> None:
        """What every path that writes an environment must hold to: valid
        addresses, a sane number of approvals, and a promotion order that
        never loops back on itself (then neither environment could be used)."""
        field_errors(
            {
                "upload_url": lambda: clean_http_url(self.upload_url),
                "index_url": lambda: clean_http_url(self.index_url),
                "fallback_index_url": lambda: self.fallback_index_url and clean_http_url(self.fallback_index_url),
                "project_url_template": lambda: (
                    self.project_url_template and clean_url_template(self.project_url_template)
                ),
                "required_approvals": lambda: _approvals(self.required_approvals),
                "requires_success_in": lambda: _no_loop(self),
                "allowed_ref_pattern": lambda: self.allowed_ref_pattern and clean_glob(self.allowed_ref_pattern),
                "request_ttl_hours": lambda: _ttl(self.request_ttl_hours),
            }
        )


PYPI_HOSTS = ("pypi.org", "upload.pypi.org", "test.pypi.org", "files.pythonhosted.org")


def is_pypi_address(url: str) -> bool:
    """Whether ``url`` is PyPI's or Test PyPI's, whose upload rules then apply by default."""
    host = (urlsplit(url).hostname or "").lower()
    return host in PYPI_HOSTS


def _approvals(count: int) -> None:
    if not 0 <= count <= MAX_APPROVALS:
        raise ValidationError(f"Approvals must be between 0 and {MAX_APPROVALS}.")


def _ttl(hours: int) -> None:
    if not 1 <= hours <= 24 * 365:
        raise ValidationError("A request stays open between 1 hour and 365 days.")


def _no_loop(environment: Environment) -> None:
    seen = {environment.pk} if environment.pk else set()
    step = environment.requires_success_in
    while step is not None:
        if step.pk in seen or step.pk == environment.pk:
            raise ValidationError(
                f"{environment.name} cannot come after {environment.requires_success_in}: the order would loop."
            )
        seen.add(step.pk)
        step = step.requires_success_in
