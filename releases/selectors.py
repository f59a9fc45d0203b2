"""Reads that commands and views share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q, QuerySet
from packaging.utils import canonicalize_name

from releases.models import AuditEvent, Deployment, Environment, Job, JobLogLine, Project, Release


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
    deployments = Deployment.objects.select_related("release__project", "environment", "requested_by").order_by(
        "-created_at", "-id"
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
