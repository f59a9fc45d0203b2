"""Workflow runs a deployment dispatched: reserve, adopt, record what GitHub says.

A run's status only moves forward (queued, then in_progress, then
completed, which is final): GitHub does not promise to deliver
``workflow_run`` events in order, so a late "in_progress" after
"completed" is ignored, and counted on the run (``late_events``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from releases.models import AuditAction, Deployment, Project, WorkflowRun
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


# GitHub's run statuses, in the order a run goes through them.
# Reference: https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-repository
STATUS_RANK = {"requested": 0, "waiting": 0, "pending": 0, "queued": 0, "in_progress": 1, "completed": 2}


def status_moves_forward(current: str, conclusion: str, new: str, new_conclusion: str) -> bool:
    """Whether a run at ``current`` (``conclusion``) may be told it is at ``new``:
    never backwards, and a completed run's conclusion never changes."""
    if STATUS_RANK.get(new, 0) < STATUS_RANK.get(current, 0):
        return False
    return not (current == "completed" and conclusion and new_conclusion != conclusion)


def workflow_run_update(
    record: WorkflowRun, *, status: str, conclusion: str, html_url: str, jobs: list[dict[str, Any]] | None = None
) -> None:
    fields = ["html_url", "updated_at"]
    if status_moves_forward(record.status, record.conclusion, status[:30], conclusion[:30]):
        record.status = status[:30]
        record.conclusion = conclusion[:30]
        fields += ["status", "conclusion"]
    record.html_url = html_url[:500] or record.html_url
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


# What a ``workflow_run`` event did to the runs the console follows.
RUN_UPDATED = "updated"
RUN_UNTRACKED = "untracked"
RUN_LATE = "late"


def workflow_run_from_webhook(project: Project, payload: dict[str, Any]) -> str:
    """Apply a ``workflow_run`` event to the run it names, if that run is one
    of ``project``'s deployments follow, in the repository and workflow file
    the event names (never by run id alone); a status that would move the
    run backwards is ignored and counted."""
    # Reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run
    run = payload.get("workflow_run")
    if not isinstance(run, dict) or not isinstance(run.get("id"), int):
        return RUN_UNTRACKED
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    path = workflow_path(payload)
    if not isinstance(full_name, str) or path is None:
        return RUN_UNTRACKED
    status = str(run.get("status") or "")[:30]
    conclusion = str(run.get("conclusion") or "")[:30]
    with transaction.atomic():
        record = (
            WorkflowRun.objects.select_for_update()
            .filter(run_id=run["id"], deployment__release__project=project, repository__iexact=full_name)
            .first()
        )
        if record is None or path != f".github/workflows/{record.workflow_file}":
            return RUN_UNTRACKED
        if not status_moves_forward(record.status, record.conclusion, status, conclusion):
            WorkflowRun.objects.filter(pk=record.pk).update(late_events=F("late_events") + 1)
            return RUN_LATE
        WorkflowRun.objects.filter(pk=record.pk).update(status=status, conclusion=conclusion, updated_at=timezone.now())
    return RUN_UPDATED


def workflow_path(payload: dict[str, Any]) -> str | None:
    """The workflow file a ``workflow_run`` event is about (".github/workflows/publish.yml"),
    without the "@ref" a called workflow's path may carry."""
    for holder in (payload.get("workflow_run"), payload.get("workflow")):
        path = holder.get("path") if isinstance(holder, dict) else None
        if isinstance(path, str) and path:
            return path.split("@", 1)[0]
    return None
