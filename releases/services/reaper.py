"""The reaper: recovers from lost workers and lost messages (DESIGN.md
principle 1), and ends requests nobody decided on. Run by beat on every
host that starts beat: each step is a conditional move, safe to run twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releases.models import Job
from releases.services.jobs import Claim, job_finish, job_requeue, job_send
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
    2. A queued job older than ``JOB_REQUEUE_AFTER`` may have lost its
       message: send it again (a duplicate is harmless, the claim is
       conditional).
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
    lost = Job.objects.filter(
        state=Job.State.QUEUED, queued_at__lt=now - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    ).values_list("pk", flat=True)
    for job_id in lost:
        with transaction.atomic():
            if Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(queued_at=now):
                job_send(job_id)
                report.resent.append(job_id)
    if report.requeued or report.failed or report.resent:
        logger.info("reaper: requeued %s, failed %s, resent %s", report.requeued, report.failed, report.resent)
    return report


def _reap_stale(job: Job, report: ReapReport) -> None:
    with transaction.atomic():
        if job.attempts < settings.JOB_MAX_ATTEMPTS:
            if job_requeue(job, why="requeued: its worker stopped answering") is not None:
                report.requeued.append(job.pk)
                job_send(job.pk)
            return
        reason = (
            f"The worker running this job stopped answering {job.attempts} times "
            "(killed or out of memory); it was not retried again."
        )
        finished = job_finish(Claim(job.pk, job.attempts), outcome=Job.Outcome.FAILED, reason=reason)
        if finished is not None:
            report.failed.append(job.pk)
            job_failed(finished, reason)
