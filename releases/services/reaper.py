"""The reaper: recovers from lost workers and lost messages (DESIGN.md
principle 1), and ends requests nobody decided on. Beat sends it from one
host at a time (console/beat.py), but every step is a conditional move, so
that reapers on several hosts at once still requeue, fail or resend each
job once (tests/test_hosts.py runs them side by side)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releases.models import Job
from releases.services.jobs import Claim, job_finish, job_requeue, job_send, project_jobs
from releases.services.pipeline import job_failed

logger = logging.getLogger(__name__)


@dataclass
class ReapReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)


def jobs_reap() -> ReapReport:
    """1. A running job whose heartbeat is older than ``JOB_STALE_AFTER`` lost
       its worker: queue it again while attempts remain, else fail it.
    2. A queued job sent more than ``JOB_REQUEUE_AFTER`` ago may have lost
       its message: send it again (a duplicate is harmless, the claim is
       conditional), unless its project runs all the jobs it may: a job of
       that project sends the waiting ones when it finishes.
    """
    now = timezone.now()
    report = ReapReport()
    stale = Job.objects.filter(
        state=Job.State.RUNNING, heartbeat_at__lt=now - timedelta(seconds=settings.JOB_STALE_AFTER)
    ).select_related("release", "deployment")
    for job in stale:
        try:
            _reap_stale(job, report)
        except Exception:  # one bad row must not stop the reaper for the others
            logger.exception("reaper: could not reap job %s", job.pk)
    _resend_lost(now, report)
    if report.requeued or report.failed or report.resent:
        logger.info("reaper: requeued %s, failed %s, resent %s", report.requeued, report.failed, report.resent)
    return report


def _resend_lost(now: datetime, report: ReapReport) -> None:
    cutoff = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    lost = Job.objects.filter(state=Job.State.QUEUED, sent_at__lt=cutoff).values_list(
        "pk", "kind", "release__project_id", "deployment__project_id"
    )
    full: dict[int, bool] = {}
    for job_id, kind, release_project, deployment_project in lost:
        project_id = release_project or deployment_project
        if project_id is not None:
            if project_id not in full:
                running = project_jobs(project_id).filter(state=Job.State.RUNNING).count()
                full[project_id] = running >= settings.PROJECT_MAX_RUNNING_JOBS
            if full[project_id]:
                continue
        with transaction.atomic():
            # Conditional on the old time: of two reapers at once, one sends.
            if Job.objects.filter(pk=job_id, state=Job.State.QUEUED, sent_at__lt=cutoff).update(sent_at=now):
                job_send(job_id, kind=kind)
                report.resent.append(job_id)


def _reap_stale(job: Job, report: ReapReport) -> None:
    with transaction.atomic():
        if job.attempts < settings.JOB_MAX_ATTEMPTS:
            if job_requeue(job, why="requeued: its worker stopped answering") is not None:
                report.requeued.append(job.pk)
                job_send(job.pk, kind=job.kind)
            return
        reason = (
            f"The worker running this job stopped answering {job.attempts} times "
            "(killed or out of memory); it was not retried again."
        )
        finished = job_finish(Claim(job.pk, job.attempts), outcome=Job.Outcome.FAILED, reason=reason)
        if finished is not None:
            report.failed.append(job.pk)
            job_failed(finished, reason)
