"""Reads that commands and views share."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.utils import timezone
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from releases.models import (
    Approval,
    Artifact,
    AuditEvent,
    Deployment,
    Environment,
    Job,
    JobLogLine,
    Project,
    Release,
)


def project_by_name(name: str) -> Project:
    project = Project.objects.filter(name=canonicalize_name(name)).first()
    if project is None:
        raise ValidationError(f"There is no project named {name!r}; add it with project_add.")
    return project


def environment_by_name(name: str) -> Environment:
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        known = ", ".join(Environment.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError(f"There is no environment named {name!r} (known: {known}).")
    return environment


def release_by_version(project_name: str, version: str) -> Release:
    project = project_by_name(project_name)
    release = Release.objects.filter(project=project, version=version).first()
    if release is None:
        raise ValidationError(f"{project.name} has no release {version!r}; create it with release_create.")
    return release


# --- Reads for the browser console. Each returns in a fixed number of
# queries, however many releases and deployments there are.


@dataclass(frozen=True)
class BoardCell:
    """One project on one environment: what is live there, and the latest attempt."""

    live: Deployment | None
    latest: Deployment | None


@dataclass(frozen=True)
class Board:
    projects: list[Project]
    environments: list[Environment]
    cells: dict[tuple[int, int], BoardCell]

    def rows(self) -> list[tuple[Project, list[BoardCell]]]:
        empty = BoardCell(None, None)
        return [
            (project, [self.cells.get((project.pk, env.pk), empty) for env in self.environments])
            for project in self.projects
        ]


def deployment_board() -> Board:
    """Every project against every environment (four queries)."""
    projects = list(Project.objects.order_by("name"))
    environments = list(Environment.objects.order_by("position", "name"))
    # The newest id per (project, environment) stands for the newest
    # deployment: ids grow with time. Works on PostgreSQL and SQLite alike.
    heads = (
        Deployment.objects.values("release__project_id", "environment_id")
        .annotate(latest=Max("id"), live=Max("id", filter=Q(status=Deployment.Status.SUCCEEDED)))
        .order_by()
    )
    keys: dict[tuple[int, int], tuple[int, int | None]] = {
        (row["release__project_id"], row["environment_id"]): (row["latest"], row["live"]) for row in heads
    }
    wanted = {pk for pair in keys.values() for pk in pair if pk is not None}
    by_id = Deployment.objects.select_related("release", "requested_by").in_bulk(wanted)
    cells = {
        key: BoardCell(live=by_id.get(live) if live else None, latest=by_id.get(latest))
        for key, (latest, live) in keys.items()
    }
    return Board(projects, environments, cells)


def audit_recent(limit: int = 12) -> list[AuditEvent]:
    return list(AuditEvent.objects.select_related("release__project").order_by("-id")[:limit])


def deployments_waiting_for_approval(limit: int = 50) -> list[Deployment]:
    return list(
        Deployment.objects.filter(status=Deployment.Status.PENDING_APPROVAL)
        .select_related("release__project", "environment", "requested_by")
        .annotate(approvals_given=Count("approvals", filter=Q(approvals__decision="approve")))
        .order_by("created_at")[:limit]
    )


@dataclass(frozen=True)
class ReleaseRow:
    release: Release
    states: list[Deployment | None]


def project_release_rows(
    project: Project, releases: list[Release], environments: list[Environment]
) -> list[ReleaseRow]:
    """Each release of a page with its newest deployment per environment (one query)."""
    newest: dict[tuple[int, int], Deployment] = {}
    for deployment in Deployment.objects.filter(release__in=releases).select_related("requested_by").order_by("id"):
        newest[(deployment.release_id, deployment.environment_id)] = deployment
    return [ReleaseRow(r, [newest.get((r.pk, env.pk)) for env in environments]) for r in releases]


def release_for_page(project_name: str, version: str) -> Release | None:
    return (
        Release.objects.select_related("project", "created_by")
        .filter(project__name=canonicalize_name(project_name), version=version)
        .first()
    )


def release_deployments(release: Release) -> list[Deployment]:
    """Every deployment of ``release``, newest first, with what the page shows."""
    return list(
        release.deployments.select_related("environment", "requested_by")
        .annotate(approvals_given=Count("approvals", filter=Q(approvals__decision="approve")))
        .order_by("-id")
    )


def release_jobs(release: Release) -> list[Job]:
    return list(release.jobs.select_related("deployment__environment").order_by("created_at", "id"))


def release_timeline(release: Release, limit: int = 200) -> list[AuditEvent]:
    return list(release.audit_events.order_by("-id")[:limit])


@dataclass(frozen=True)
class LogPage:
    """A window of a job's log, oldest line first."""

    lines: list[JobLogLine]
    earlier: int | None  # the ``before`` that shows the lines above, if any
    later: int | None  # the ``before`` that shows the lines below, if not the tail
    is_tail: bool


LOG_PAGE_LINES = 200


def job_log_page(job: Job, before: int | None = None, limit: int = LOG_PAGE_LINES) -> LogPage:
    """The ``limit`` lines before line number ``before`` (the tail when None).

    One index range scan on (job, number), backwards, so a page costs the
    same with a million lines as with ten.
    """
    lines = job.lines.order_by("-number")
    if before is not None:
        lines = lines.filter(number__lt=before)
    page = list(lines.only("job_id", "number", "text", "created_at")[: limit + 1])
    has_earlier = len(page) > limit
    page = list(reversed(page[:limit]))
    earlier = page[0].number if has_earlier and page else None
    later = None
    if before is not None and page:
        later = page[-1].number + 1 + limit
    return LogPage(lines=page, earlier=earlier, later=later, is_tail=before is None)


def deployment_history(filters: dict[str, Any]) -> QuerySet[Deployment]:
    """Every deployment ever, newest first, narrowed by the history form's values."""
    approved = Approval.objects.filter(decision=Approval.Decision.APPROVE).select_related("approver")
    deployments = (
        Deployment.objects.select_related("release__project", "environment", "requested_by")
        .prefetch_related(Prefetch("approvals", queryset=approved, to_attr="approvals_granted"))
        .order_by("-created_at", "-id")
    )
    if filters.get("project"):
        deployments = deployments.filter(release__project=filters["project"])
    if filters.get("environment"):
        deployments = deployments.filter(environment=filters["environment"])
    if filters.get("status"):
        deployments = deployments.filter(status=filters["status"])
    if filters.get("requested_by"):
        deployments = deployments.filter(requested_by__username=filters["requested_by"])
    if filters.get("date_from"):
        deployments = deployments.filter(created_at__date__gte=filters["date_from"])
    if filters.get("date_to"):
        deployments = deployments.filter(created_at__date__lte=filters["date_to"])
    return deployments


def environment_first_automatic() -> Environment | None:
    """Where a release from a GitHub webhook goes first: test-pypi, or else
    the first environment (by position) that needs no approval and follows none."""
    named = Environment.objects.filter(name="test-pypi").first()
    if named is not None:
        return named
    return (
        Environment.objects.filter(required_approvals=0, requires_success_in__isnull=True)
        .order_by("position", "name")
        .first()
    )


def github_refs(project: Project) -> list[str]:
    """The repository's tags, then its branches, as GitHub lists them.

    Kept for GITHUB_REFS_CACHE_SECONDS so that a form re-rendered while
    someone types does not ask GitHub each time. Raises StepFailed or
    TransientError (releases.pipeline.errors) with a readable reason.
    """
    from django.conf import settings
    from django.core.cache import cache

    from releases.github import GitHubClient

    key = f"github-refs:{project.pk}:{project.github_repository}"
    cached = cache.get(key)
    if isinstance(cached, list):
        return cached
    client = GitHubClient(project)
    try:
        refs = client.refs()
    finally:
        client.close()
    cache.set(key, refs, settings.GITHUB_REFS_CACHE_SECONDS)
    return refs


def deployments_awaiting(user: User) -> QuerySet[Deployment]:
    """Pending requests ``user`` may decide on and has not decided on yet."""
    from releases.services.approvals import can_approve

    if not can_approve(user):
        return Deployment.objects.none()
    return (
        Deployment.objects.filter(status=Deployment.Status.PENDING_APPROVAL, expires_at__gt=timezone.now())
        .exclude(requested_by=user)
        .exclude(approvals__approver=user)
        .select_related("release__project", "environment", "requested_by")
        .order_by("expires_at", "id")
    )


@dataclass(frozen=True)
class DependencyChange:
    name: str
    before: str
    after: str


@dataclass
class ApprovalReview:
    """Everything the approval page shows about one deployment."""

    deployment: Deployment
    artifacts: list[Artifact]
    digests: list[str]
    earlier: Deployment | None
    earlier_files: dict[str, str]
    earlier_matches: bool
    previous: Release | None
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    dependencies: list[str] | None = None
    dependency_changes: list[DependencyChange] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)


def approval_review(deployment: Deployment) -> ApprovalReview:
    """The files and digests, the earlier environment's verification, and what changed since the last release."""
    release = deployment.release
    artifacts = list(release.artifacts.all())
    digests = sorted(a.sha256 for a in artifacts)
    earlier = None
    earlier_files: dict[str, str] = {}
    if deployment.environment.requires_success_in_id is not None:
        earlier = (
            Deployment.objects.filter(
                release=release,
                environment_id=deployment.environment.requires_success_in_id,
                status=Deployment.Status.SUCCEEDED,
            )
            .select_related("environment")
            .order_by("-finished_at", "-id")
            .first()
        )
        if earlier is not None:
            earlier_files = dict(earlier.summary.get("verify", {}).get("files", {}))
    previous = release_previous(release)
    review = ApprovalReview(
        deployment=deployment,
        artifacts=artifacts,
        digests=digests,
        earlier=earlier,
        earlier_files=earlier_files,
        earlier_matches=bool(earlier_files) and earlier_files == {a.filename: a.sha256 for a in artifacts},
        previous=previous,
        approvals=list(deployment.approvals.select_related("approver")),
    )
    current_requirements = release_requirements(release)
    review.dependencies = current_requirements
    if previous is not None:
        before = {_file_shape(a.filename, previous.version) for a in previous.artifacts.all()}
        after = {_file_shape(a.filename, release.version) for a in artifacts}
        review.files_added = sorted(after - before)
        review.files_removed = sorted(before - after)
        previous_requirements = release_requirements(previous)
        if current_requirements is not None and previous_requirements is not None:
            review.dependency_changes = _dependency_changes(previous_requirements, current_requirements)
    return review


def release_previous(release: Release) -> Release | None:
    """The project's last built release before ``release``."""
    return (
        Release.objects.filter(
            project=release.project, build_state=Release.BuildState.BUILT, created_at__lt=release.created_at
        )
        .exclude(pk=release.pk)
        .order_by("-created_at", "-id")
        .first()
    )


def _file_shape(filename: str, version: str) -> str:
    """A filename with its version replaced, so that releases can be compared."""
    return filename.replace(version, "{version}")


def release_requirements(release: Release) -> list[str] | None:
    """Requires-Dist of the release's stored wheel, or None when it has no readable wheel."""
    wheel = release.artifacts.filter(kind=Artifact.Kind.WHEEL).order_by("filename").first()
    if wheel is None:
        return None
    try:
        with storages["artifacts"].open(wheel.path, "rb") as handle, zipfile.ZipFile(handle) as archive:
            name = next((n for n in archive.namelist() if n.endswith(".dist-info/METADATA")), None)
            if name is None:
                return None
            raw = archive.read(name)
    except (OSError, zipfile.BadZipFile):
        return None
    # Reference: https://packaging.pypa.io/en/stable/metadata.html
    metadata = Metadata.from_email(raw, validate=False)
    return sorted(str(requirement) for requirement in metadata.requires_dist or [])


def _dependency_changes(before: list[str], after: list[str]) -> list[DependencyChange]:
    def by_name(requirements: list[str]) -> dict[str, str]:
        named: dict[str, list[str]] = {}
        for text in requirements:
            named.setdefault(canonicalize_name(Requirement(text).name), []).append(text)
        return {name: "; ".join(sorted(texts)) for name, texts in named.items()}

    old, new = by_name(before), by_name(after)
    return [
        DependencyChange(name, old.get(name, ""), new.get(name, ""))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""
    action: str = ""
    object: str = ""
    release_id: int | None = None
    date_from: date | None = None
    date_to: date | None = None


def audit_events(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """Audit events, newest first. ``object`` is ``type`` or ``type:id`` (e.g. ``deployment:12``)."""
    events = AuditEvent.objects.order_by("-id")
    if filters.actor:
        events = events.filter(actor_name__iexact=filters.actor)
    if filters.action:
        events = events.filter(action__startswith=filters.action)
    if filters.object:
        object_type, _, object_id = filters.object.partition(":")
        events = events.filter(object_type=object_type.strip().lower())
        if object_id.strip():
            events = events.filter(object_id=object_id.strip())
    if filters.release_id is not None:
        events = events.filter(release_id=filters.release_id)
    if filters.date_from:
        events = events.filter(created_at__date__gte=filters.date_from)
    if filters.date_to:
        events = events.filter(created_at__date__lte=filters.date_to)
    return events
