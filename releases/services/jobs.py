"""Job lifecycle: create and enqueue, claim, heartbeat, finish, reap.

DESIGN.md principles 1 and 2: the row is written first and the task sent
after commit with the row's id; a worker claims the job with a conditional
update and proves it still owns it on every heartbeat, so a task delivered
twice runs once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from releases.models import Deployment, Job, Release
from releases.redaction import redact

logger = logging.getLogger(__name__)


def job_create(*, kind: str, release: Release, deployment: Deployment | None = None) -> Job:
    """Write a queued job and send its id to the workers once committed."""
    job = Job.objects.create(kind=kind, release=release, deployment=deployment)
    job_send(job.pk)
    return job


# The task that runs a job (releases/tasks.py), sent by name: a process that
# only queues work, such as a headless command, does not import the worker's
# pipeline to send it (a third of a command's start-up).
RUN_JOB = "releases.tasks.run_job"


def job_send(job_id: int) -> None:
    transaction.on_commit(lambda: current_app.send_task(RUN_JOB, args=[job_id]))


@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt: int


def job_claim(job_id: int, *, task_id: str = "", worker: str = "") -> Claim | None:
    """Move a queued job to running; None when another worker has it."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
            state=Job.State.RUNNING,
            attempts=F("attempts") + 1,
            started_at=now,
            heartbeat_at=now,
            celery_task_id=task_id[:50],
            worker=worker[:200],
            step="starting",
        )
        if not claimed:
            return None
        attempt = Job.objects.values_list("attempts", flat=True).get(pk=job_id)
    return Claim(job_id, attempt)


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


def job_finish(claim: Claim, *, outcome: str, error: str = "") -> bool:
    """Finish the job if it is still ours; the caller's transaction holds it."""
    return bool(
        Job.objects.filter(pk=claim.job_id, state=Job.State.RUNNING, attempts=claim.attempt).update(
            state=Job.State.FINISHED,
            outcome=outcome,
            error=redact(error)[:5000],
            finished_at=timezone.now(),
            step="",
        )
    )


@dataclass
class ReapReport:
    requeued: list[int]
    failed: list[int]
    resent: list[int]


def jobs_reap() -> ReapReport:
    """Recover from lost workers and lost messages.

    1. A running job whose heartbeat is older than ``JOB_STALE_AFTER`` lost
       its worker: queue it again while attempts remain, else fail it.
    2. A queued job older than ``JOB_REQUEUE_AFTER`` may have lost its
       message: send it again (a duplicate is harmless, the claim is
       conditional).
    """
    now = timezone.now()
    report = ReapReport([], [], [])
    stale = Job.objects.filter(
        state=Job.State.RUNNING, heartbeat_at__lt=now - timedelta(seconds=settings.JOB_STALE_AFTER)
    )
    for job in stale:
        try:
            _reap_stale(job, now, report)
        except Exception:  # one bad row must not stop the reaper for the others
            logger.exception("reaper: could not reap job %s", job.pk)
    lost = Job.objects.filter(
        state=Job.State.QUEUED, queued_at__lt=now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    ).values_list("pk", flat=True)
    for job_id in lost:
        Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(queued_at=now)
        job_send(job_id)
        report.resent.append(job_id)
    if report.requeued or report.failed or report.resent:
        logger.info("reaper: requeued %s, failed %s, resent %s", report.requeued, report.failed, report.resent)
    return report


def _reap_stale(job: Job, now: datetime, report: ReapReport) -> None:
    from releases.services.pipeline import job_failed

    with transaction.atomic():
        if job.attempts < settings.JOB_MAX_ATTEMPTS:
            updated = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, attempts=job.attempts).update(
                state=Job.State.QUEUED, queued_at=now, step="requeued: its worker stopped answering"
            )
            if updated:
                report.requeued.append(job.pk)
                job_send(job.pk)
            return
        claim = Claim(job.pk, job.attempts)
        reason = (
            f"The worker running this job stopped answering {job.attempts} times "
            "(killed or out of memory); it was not retried again."
        )
        if job_finish(claim, outcome=Job.Outcome.FAILED, error=reason):
            report.failed.append(job.pk)
            job_failed(Job.objects.get(pk=job.pk), reason)
