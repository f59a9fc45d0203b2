"""Jobs: create and send, claim, heartbeat, finish.

DESIGN.md principles 1 and 2: the row is written first and the task sent
after commit with the row's id; a worker claims the job with a conditional
move (``lifecycle.transition`` with ``expect``) and proves it still owns it
on every heartbeat, so a task delivered twice runs once.

Fairness: a project runs at most ``PROJECT_MAX_RUNNING_JOBS`` jobs at once.
The claim counts them under a lock on the project (an advisory lock: a
builder's database role may not lock the project's row); a job over the
limit stays queued (its message is spent), and each job that finishes sends
again the oldest jobs of its project that wait, so that one project queueing
many releases takes only its share of the workers. The reaper sends again
whatever still waits after a lost message (services/reaper.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from releases.models import Deployment, Job, Release, WebhookDelivery
from releases.services.lifecycle import transition

logger = logging.getLogger(__name__)

# The task that runs a job (releases/tasks.py), sent by name: a process that
# only queues work, such as a headless command, does not import the worker's
# pipeline to send it (a third of a command's start-up).
RUN_JOB = "releases.tasks.run_job"


def job_create(
    *,
    kind: str,
    release: Release | None = None,
    deployment: Deployment | None = None,
    delivery: WebhookDelivery | None = None,
) -> Job:
    """Write a queued job and send its id to the workers once committed."""
    job = Job.objects.create(kind=kind, release=release, deployment=deployment, delivery=delivery)
    job_send(job.pk, kind=kind)
    return job


# The jobs that run package code (in the sandbox). They go to the builders,
# which hold no token key ring; every other job goes to the publishers,
# which never run package code (docs/security.md).
PACKAGE_CODE_KINDS = frozenset({Job.Kind.BUILD, Job.Kind.VERIFY})


def job_queue(kind: str) -> str:
    return settings.CELERY_BUILDER_QUEUE if kind in PACKAGE_CODE_KINDS else settings.CELERY_TASK_DEFAULT_QUEUE


def job_runs_here(kind: str) -> bool:
    """Whether this worker's role runs jobs of ``kind``."""
    if settings.WORKER_ROLE == "all":
        return True
    return (kind in PACKAGE_CODE_KINDS) == (settings.WORKER_ROLE == "builder")


def job_send(job_id: int, *, kind: str | None = None) -> None:
    """Send the job's id, once committed, to the queue of its kind's workers."""
    queue = job_queue(kind or Job.objects.values_list("kind", flat=True).get(pk=job_id))
    transaction.on_commit(lambda: current_app.send_task(RUN_JOB, args=[job_id], queue=queue))


@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt: int


def job_claim(job_id: int, *, task_id: str = "", worker: str = "") -> Claim | None:
    """Move a queued job to running; None when another worker has it, or
    when its project already runs as many jobs as it may (it stays queued,
    and is sent again when one of them finishes).

    1. Lock the project, so that two workers claiming two of its jobs at
       once count one after the other.
    2. Count the project's running jobs; at the limit, say so on the job and
       leave it queued.
    3. Claim with the conditional move.
    """
    with transaction.atomic():
        project_id = _project_of(job_id)
        if project_id is not None:
            _lock_project(project_id)
            running = project_jobs(project_id).filter(state=Job.State.RUNNING).count()
            limit = settings.PROJECT_MAX_RUNNING_JOBS
            if running >= limit:
                waiting = f"waiting: its project runs {running} of the {limit} jobs it may run at once"
                if Job.objects.filter(pk=job_id, state=Job.State.QUEUED).exclude(step=waiting).update(step=waiting):
                    logger.info("job %s %s", job_id, waiting)
                return None
        claimed = transition(
            Job(pk=job_id),
            Job.State.RUNNING,
            expect=[Job.State.QUEUED],
            changes={
                "attempts": lambda job: job.attempts + 1,
                "celery_task_id": task_id[:50],
                "worker": worker[:200],
                "step": "starting",
            },
        )
    return None if claimed is None else Claim(job_id, claimed.attempts)


# The first key of the advisory locks that serialize the claims of a
# project's jobs (the second is the project's id).
CLAIM_LOCK = 0x636C61  # "cla"


def _lock_project(project_id: int) -> None:
    """Hold the project's claim lock until the transaction ends. PostgreSQL:
    an advisory lock, which needs no privilege on the project's row. SQLite
    starts every write transaction IMMEDIATE (settings), so claims already
    run one at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CLAIM_LOCK, project_id])


def project_jobs(project_id: int) -> QuerySet[Job]:
    """The jobs that count against a project's limit: its builds, scans and
    deployments' jobs (a webhook delivery belongs to no project yet)."""
    return Job.objects.filter(Q(release__project_id=project_id) | Q(deployment__project_id=project_id))


def _project_of(job_id: int) -> int | None:
    row = Job.objects.filter(pk=job_id).values("release__project_id", "deployment__project_id").first()
    if row is None:
        return None
    project_id: int | None = row["release__project_id"] or row["deployment__project_id"]
    return project_id


def jobs_send_waiting(project_id: int) -> list[int]:
    """Send again the oldest queued jobs of a project, as many as it may run
    (more than the free slots, harmlessly: a claim over the limit leaves the
    job queued). Called when one of its jobs finishes.

    It reads and sends, and locks no row: the finishing transaction already
    holds its job and the audit chain's head, which a claim takes after the
    job it claims, so a lock on a waiting job here could close a cycle."""
    waiting = list(
        project_jobs(project_id)
        .filter(state=Job.State.QUEUED)
        .order_by("queued_at", "id")
        .values_list("pk", flat=True)[: settings.PROJECT_MAX_RUNNING_JOBS]
    )
    for job_id in waiting:
        job_send(job_id)
    return waiting


def job_owns(claim: Claim) -> bool:
    return Job.objects.filter(pk=claim.job_id, state=Job.State.RUNNING, attempts=claim.attempt).exists()


def job_heartbeat(claim: Claim, *, log_lines: int | None = None) -> bool:
    """Record that the job is alive; False when the job is no longer ours."""
    fields: dict[str, object] = {"heartbeat_at": timezone.now()}
    if log_lines is not None:
        fields["log_lines"] = log_lines
    return bool(Job.objects.filter(pk=claim.job_id, state=Job.State.RUNNING, attempts=claim.attempt).update(**fields))


def job_set_step(claim: Claim, step: str) -> None:
    Job.objects.filter(pk=claim.job_id, attempts=claim.attempt).update(step=step[:200], heartbeat_at=timezone.now())


def job_finish(claim: Claim, *, outcome: str, reason: str = "") -> Job | None:
    """Finish the job if it is still this attempt's, and give its slot to
    the jobs of its project that wait; the caller's transaction holds it."""
    finished = transition(
        Job(pk=claim.job_id),
        Job.State.FINISHED,
        outcome=outcome,
        reason=reason,
        expect=[Job.State.RUNNING],
        where={"attempts": claim.attempt},
    )
    if finished is not None:
        project_id = _project_of(claim.job_id)
        if project_id is not None:
            jobs_send_waiting(project_id)
    return finished


def job_requeue(job: Job, *, why: str) -> Job | None:
    """A running job whose worker went silent waits for another (same attempt only)."""
    return transition(
        job,
        Job.State.QUEUED,
        expect=[Job.State.RUNNING],
        where={"attempts": job.attempts},
        changes={"step": why, "sent_at": timezone.now()},
    )


def job_cancel(job: Job, *, reason: str) -> Job | None:
    """A queued job whose deployment ended is never run."""
    return transition(job, Job.State.FINISHED, outcome=Job.Outcome.CANCELLED, reason=reason, expect=[Job.State.QUEUED])
