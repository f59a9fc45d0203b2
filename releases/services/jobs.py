"""Jobs: create and send, claim, heartbeat, finish.

DESIGN.md principles 1 and 2: the row is written first and the task sent
after commit with the row's id; a worker claims the job with a conditional
move (``lifecycle.transition`` with ``expect``) and proves it still owns it
on every heartbeat, so a task delivered twice runs once.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import current_app
from django.db import transaction
from django.utils import timezone

from releases.models import Deployment, Job, Release, WebhookDelivery
from releases.services.lifecycle import transition

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
    job_send(job.pk)
    return job


def job_send(job_id: int) -> None:
    transaction.on_commit(lambda: current_app.send_task(RUN_JOB, args=[job_id]))


@dataclass(frozen=True)
class Claim:
    job_id: int
    attempt: int


def job_claim(job_id: int, *, task_id: str = "", worker: str = "") -> Claim | None:
    """Move a queued job to running; None when another worker has it."""
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
    """Finish the job if it is still this attempt's; the caller's transaction holds it."""
    return transition(
        Job(pk=claim.job_id),
        Job.State.FINISHED,
        outcome=outcome,
        reason=reason,
        expect=[Job.State.RUNNING],
        where={"attempts": claim.attempt},
    )


def job_requeue(job: Job, *, why: str) -> Job | None:
    """A running job whose worker went silent waits for another (same attempt only)."""
    return transition(
        job, Job.State.QUEUED, expect=[Job.State.RUNNING], where={"attempts": job.attempts}, changes={"step": why}
    )


def job_cancel(job: Job, *, reason: str) -> Job | None:
    """A queued job whose deployment ended is never run."""
    return transition(job, Job.State.FINISHED, outcome=Job.Outcome.CANCELLED, reason=reason, expect=[Job.State.QUEUED])
