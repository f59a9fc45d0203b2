"""Workflow runs a deployment dispatched: reserve, adopt, record what GitHub says."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from releases.models import AuditAction, Deployment, WorkflowRun
from releases.services.audit import audit_record


def workflow_run_reserve(deployment: Deployment, *, head_sha: str, inputs: dict[str, str]) -> WorkflowRun | None:
    """The row that waits for the run this deployment is about to start.

    None while another dispatch of the same workflow is still finding its
    run (the database allows one such row per workflow). A row left by a
    worker that died looking is cleared once it is clearly stale.
    """
    project = deployment.release.project
    now = timezone.now()
    stale = now - timedelta(seconds=2 * settings.GITHUB_FIND_RUN_TIMEOUT + 60)
    WorkflowRun.objects.filter(
        repository=project.github_repository,
        workflow_file=project.workflow_file,
        run_id__isnull=True,
        dispatched_at__lt=stale,
    ).delete()
    try:
        with transaction.atomic():
            return WorkflowRun.objects.create(
                deployment=deployment,
                repository=project.github_repository,
                workflow_file=project.workflow_file,
                head_sha=head_sha,
                inputs=inputs,
                dispatched_at=now,
            )
    except IntegrityError:
        return None


def workflow_run_adopt(record: WorkflowRun, run_id: int) -> bool:
    """Bind GitHub run ``run_id`` to ``record``; False when another deployment has it."""
    try:
        with transaction.atomic():
            updated = WorkflowRun.objects.filter(pk=record.pk, run_id__isnull=True).update(run_id=run_id)
            if not updated:
                return False
            record.refresh_from_db()
            deployment = record.deployment
            audit_record(
                actor=None,
                action=AuditAction.WORKFLOW_DISPATCHED,
                target=deployment,
                release=deployment.release,
                data={
                    "repository": record.repository,
                    "workflow": record.workflow_file,
                    "run_id": run_id,
                    "inputs": record.inputs,
                },
            )
    except IntegrityError:
        return False
    return True


def workflow_run_forget(record: WorkflowRun) -> None:
    """Drop a reservation that never found its run, freeing the workflow."""
    WorkflowRun.objects.filter(pk=record.pk, run_id__isnull=True).delete()


def workflow_run_update(
    record: WorkflowRun, *, status: str, conclusion: str, html_url: str, jobs: list[dict[str, Any]] | None = None
) -> None:
    record.status = status[:30]
    record.conclusion = conclusion[:30]
    record.html_url = html_url[:500] or record.html_url
    fields = ["status", "conclusion", "html_url", "updated_at"]
    if jobs is not None:
        record.jobs = jobs
        fields.append("jobs")
    record.save(update_fields=fields)


def workflow_run_record_result(record: WorkflowRun) -> None:
    """Put the run on the deployment's summary, and audit how it ended."""
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=record.deployment_id)
        summary = dict(deployment.summary)
        summary["workflow"] = {
            "repository": record.repository,
            "workflow": record.workflow_file,
            "run_id": record.run_id,
            "html_url": record.html_url,
            "conclusion": record.conclusion,
            "jobs": record.jobs,
        }
        deployment.summary = summary
        deployment.save(update_fields=["summary"])
        audit_record(
            actor=None,
            action=AuditAction.WORKFLOW_COMPLETED,
            target=deployment,
            release=deployment.release,
            data={"run_id": record.run_id, "html_url": record.html_url, "conclusion": record.conclusion},
        )


def workflow_run_from_webhook(payload: dict[str, Any]) -> bool:
    """Apply a ``workflow_run`` event to the run it names; False when no deployment tracks it."""
    run = payload.get("workflow_run")
    if not isinstance(run, dict) or not isinstance(run.get("id"), int):
        return False
    updated = WorkflowRun.objects.filter(run_id=run["id"]).update(
        status=str(run.get("status") or "")[:30],
        conclusion=str(run.get("conclusion") or "")[:30],
        updated_at=timezone.now(),
    )
    return bool(updated)
