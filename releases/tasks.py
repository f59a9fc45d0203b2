"""Celery tasks: thin. Each takes an id, and a service does the work."""

from __future__ import annotations

from celery import Task, shared_task

from releases.services.approvals import approvals_expire
from releases.services.jobs import jobs_reap
from releases.services.pipeline import job_run
from releases.services.webhooks import webhook_process


@shared_task(bind=True, name="releases.tasks.run_job")
def run_job(self: Task, job_id: int) -> None:  # type: ignore[type-arg]
    job_run(job_id, task_id=self.request.id or "")


@shared_task(name="releases.tasks.reap")
def reap() -> None:
    jobs_reap()
    approvals_expire()


@shared_task(name="releases.tasks.process_webhook")
def process_webhook(delivery_id: int) -> None:
    webhook_process(delivery_id)
