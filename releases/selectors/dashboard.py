"""The dashboard: every project against every environment, and the
requests waiting for approval. Each read returns in a fixed number of
queries, however many releases and deployments there are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone

from releases.models import Deployment, Environment, Job, Project, Worker


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
    """Every project against every environment (three queries).

    Each cell's newest deployment, and its newest that succeeded, are two
    probes of an index on (project, environment, id): the board costs the
    same with ten releases or a hundred thousand. The newest id stands for
    the newest deployment: ids grow with time.
    """
    environments = list(Environment.objects.order_by("position", "name"))
    heads: dict[str, Subquery] = {}
    for env in environments:
        here = Deployment.objects.filter(project=OuterRef("pk"), environment=env.pk).order_by("-id").values("id")
        heads[f"latest_{env.pk}"] = Subquery(here[:1])
        heads[f"live_{env.pk}"] = Subquery(here.filter(outcome=Deployment.Outcome.SUCCEEDED)[:1])
    projects = list(Project.objects.order_by("name").annotate(**heads))
    keys: dict[tuple[int, int], tuple[int, int | None]] = {}
    for project in projects:
        for env in environments:
            latest = getattr(project, f"latest_{env.pk}")
            if latest is not None:
                keys[(project.pk, env.pk)] = (latest, getattr(project, f"live_{env.pk}"))
    wanted = {pk for pair in keys.values() for pk in pair if pk is not None}
    by_id = Deployment.objects.select_related("release", "requested_by").in_bulk(wanted)
    cells = {
        key: BoardCell(live=by_id.get(live) if live else None, latest=by_id.get(latest))
        for key, (latest, live) in keys.items()
    }
    return Board(projects, environments, cells)


def deployments_waiting_for_approval(limit: int = 50) -> list[Deployment]:
    return list(
        Deployment.objects.filter(state=Deployment.State.PENDING_APPROVAL)
        .select_related("release__project", "environment", "requested_by")
        .annotate(approvals_given_count=Count("approvals", filter=Q(approvals__decision="approve")))
        .order_by("created_at")[:limit]
    )


@dataclass(frozen=True)
class JobQueue:
    """The workers' queue as the rows tell it: what waits, since when, what
    runs, and who is alive to run it."""

    waiting: int
    oldest_queued_at: datetime | None
    running: int
    workers: list[str]  # alive: a heartbeat row seen within three periods
    hosts: list[str]  # where they run, and where running jobs beat lately

    @property
    def oldest_wait(self) -> timedelta | None:
        return None if self.oldest_queued_at is None else timezone.now() - self.oldest_queued_at


def job_queue() -> JobQueue:
    """Four queries, on the small sets of queued and running jobs and of workers."""
    now = timezone.now()
    queued = Job.objects.filter(state=Job.State.QUEUED).aggregate(count=Count("id"), oldest=Min("queued_at"))
    running = Job.objects.filter(state=Job.State.RUNNING)
    alive = list(
        Worker.objects.filter(seen_at__gte=now - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_INTERVAL))
        .order_by("name")
        .values_list("name", "hostname")
    )
    beating = running.filter(heartbeat_at__gte=now - timedelta(seconds=settings.JOB_STALE_AFTER))
    hosts = {hostname for _, hostname in alive} | set(beating.exclude(worker="").values_list("worker", flat=True))
    return JobQueue(
        waiting=queued["count"],
        oldest_queued_at=queued["oldest"],
        running=running.count(),
        workers=[name for name, _ in alive],
        hosts=sorted(hosts),
    )
