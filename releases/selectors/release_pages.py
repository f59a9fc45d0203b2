"""The project and release pages: each release's newest deployment per
environment, a release's deployments, jobs and audit timeline, and a
job's log a page at a time. Each read returns in a fixed number of
queries, however many releases and deployments there are."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from packaging.utils import canonicalize_name

from releases.models import AuditEvent, Deployment, Environment, Job, JobLogLine, Project, Release, Sbom


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
        .annotate(approvals_given_count=Count("approvals", filter=Q(approvals__decision="approve")))
        .order_by("-id")
    )


def release_jobs(release: Release) -> list[Job]:
    return list(release.jobs.select_related("deployment__environment").order_by("created_at", "id"))


def release_timeline(release: Release, limit: int = 200) -> list[AuditEvent]:
    """The release's audit events, newest first; its jobs' own moves are on
    the audit page, not here (each job is on the page already)."""
    return list(release.audit_events.exclude(action__startswith="job.").order_by("-id")[:limit])


def release_has_sbom(release: Release) -> bool:
    return Sbom.objects.filter(release=release).exists()


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
