"""Celery tasks: thin. Each takes an id, and a service does the work."""

from __future__ import annotations

from celery import Task, shared_task

# Imported for its signal handlers: a worker's heartbeat row while it runs.
from releases import worker_signals  # noqa: F401
from releases.services import audit_witnesses, monitoring, scans
from releases.services.approvals import approvals_expire
from releases.services.jobs import RUN_JOB
from releases.services.pipeline import job_run
from releases.services.reaper import jobs_reap
from releases.services.sign_in import failure_reports_flush as _failure_reports_flush


@shared_task(bind=True, name=RUN_JOB)
def run_job(self: Task, job_id: int) -> None:  # type: ignore[type-arg]
    job_run(job_id, task_id=self.request.id or "")


@shared_task(name="releases.tasks.reap")
def reap() -> None:
    jobs_reap()
    approvals_expire()


@shared_task(name="releases.tasks.scan_pending")
def scan_pending() -> None:
    scans.scan_pending()


@shared_task(name="releases.tasks.vulnerabilities_recheck")
def vulnerabilities_recheck() -> None:
    scans.vulnerabilities_recheck()


@shared_task(name="releases.tasks.credentials_age_check")
def credentials_age_check() -> None:
    monitoring.credentials_age_check()


@shared_task(name="releases.tasks.downloads_fetch")
def downloads_fetch() -> None:
    monitoring.downloads_fetch_all()


@shared_task(name="releases.tasks.audit_checkpoint")
def audit_checkpoint() -> None:
    audit_witnesses.audit_checkpoint_write()


@shared_task(name="releases.tasks.failure_reports_flush")
def failure_reports_flush() -> None:
    _failure_reports_flush()
