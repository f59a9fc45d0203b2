"""The release page: artifacts, one action per environment, live job logs,
the deployment summaries and the audit timeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from releases.models import Artifact, Deployment, Environment, Job, Release
from releases.selectors.release_pages import (
    LOG_PAGE_LINES,
    job_log_page,
    release_deployments,
    release_for_page,
    release_jobs,
    release_timeline,
)
from releases.services.deployments import deployment_request
from releases.views.access import require_permission, viewer_required

# While any of these is true the page polls its live part; then it stops.
RUNNING_DEPLOYMENT = (
    Deployment.Status.APPROVED,
    Deployment.Status.QUEUED,
    Deployment.Status.UPLOADING,
    Deployment.Status.VERIFYING,
)


@dataclass(frozen=True)
class EnvironmentPanel:
    """One environment on the release page: its newest deployment and what the viewer may do."""

    environment: Environment
    deployment: Deployment | None
    action: str  # "Publish to Test PyPI" / "Request push to PyPI"
    permission: str
    allowed: bool  # the viewer holds the permission
    blocked: str  # why the action is not offered now, in words

    @property
    def offered(self) -> bool:
        return self.allowed and not self.blocked


def environment_action(environment: Environment) -> tuple[str, str]:
    if environment.required_approvals == 0:
        return f"Publish to {environment.title}", "releases.publish_deployment"
    return f"Request push to {environment.title}", "releases.request_deployment"


def _panels(request: HttpRequest, release: Release, deployments: list[Deployment]) -> list[EnvironmentPanel]:
    environments = list(Environment.objects.select_related("requires_success_in").order_by("position", "name"))
    newest: dict[int, Deployment] = {}
    succeeded: set[int] = set()
    for deployment in deployments:  # newest first
        newest.setdefault(deployment.environment_id, deployment)
        if deployment.status == Deployment.Status.SUCCEEDED:
            succeeded.add(deployment.environment_id)
    panels = []
    for environment in environments:
        action, permission = environment_action(environment)
        current = newest.get(environment.pk)
        earlier = environment.requires_success_in
        blocked = ""
        if release.build_state == Release.BuildState.FAILED:
            blocked = "The build failed; create a new version."
        elif current is not None and current.is_active:
            blocked = f"A deployment is already {current.get_status_display().lower()}."
        elif earlier is not None and earlier.pk not in succeeded:
            blocked = f"Publish and verify on {earlier.title} first."
        panels.append(
            EnvironmentPanel(
                environment=environment,
                deployment=current,
                action=action,
                permission=permission,
                allowed=request.user.has_perm(permission),
                blocked=blocked,
            )
        )
    return panels


def _live_context(request: HttpRequest, release: Release) -> dict[str, Any]:
    deployments = release_deployments(release)
    jobs = release_jobs(release)
    running = [job for job in jobs if job.state != Job.State.FINISHED]
    chosen = _chosen_job(request, jobs, running)
    now = timezone.now()
    for job in jobs:
        job.elapsed = (  # type: ignore[attr-defined]
            (now - job.started_at).total_seconds()
            if job.state == Job.State.RUNNING and job.started_at
            else job.duration_seconds
        )
    active = (
        bool(running)
        or release.build_state in (Release.BuildState.PENDING, Release.BuildState.BUILDING)
        or any(d.status in RUNNING_DEPLOYMENT for d in deployments)
    )
    return {
        "release": release,
        "project": release.project,
        "panels": _panels(request, release, deployments),
        "artifacts": list(release.artifacts.order_by("kind", "filename")),
        "jobs": jobs,
        "job": chosen,
        # Polling follows whatever runs next unless the viewer picked a job.
        "pinned_job": chosen if chosen is not None and request.GET.get("job") == str(chosen.pk) else None,
        "log": job_log_page(chosen) if chosen is not None else None,
        "summaries": [d for d in deployments if d.status == Deployment.Status.SUCCEEDED and d.summary],
        "deployments": deployments,
        "active": active,
    }


def _chosen_job(request: HttpRequest, jobs: list[Job], running: list[Job]) -> Job | None:
    wanted = request.GET.get("job", "")
    for job in jobs:
        if str(job.pk) == wanted:
            return job
    if running:
        return next((job for job in running if job.state == Job.State.RUNNING), running[0])
    return jobs[-1] if jobs else None


def _release(name: str, version: str) -> Release:
    release = release_for_page(name, version)
    if release is None:
        raise Http404(f"There is no release {version!r} of {name!r}.")
    return release


@viewer_required
def release_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    release = _release(name, version)
    context = _live_context(request, release)
    context["timeline"] = release_timeline(release)
    return render(request, "releases/release.html", context)


@viewer_required
def release_live(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """The part of the release page that changes while jobs run (htmx polls it)."""
    release = _release(name, version)
    return render(request, "releases/partials/release_live.html", _live_context(request, release))


@require_POST
@viewer_required
def release_deploy(request: HttpRequest, name: str, version: str, environment: str) -> HttpResponseRedirect:
    """Publish (or ask to publish) a release to one environment.

    A second click, or a second person at the same moment, gets the
    deployment the first one started: the database allows one active
    deployment per release and environment.
    """
    release = _release(name, version)
    target = get_object_or_404(Environment, name=environment)
    action, permission = environment_action(target)
    require_permission(request, permission)
    try:
        deployment = deployment_request(release=release, environment=target, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, f"{action}: deployment #{deployment.pk} is {deployment.get_status_display().lower()}."
        )
    return redirect("releases:release", name=release.project.name, version=release.version)


@viewer_required
def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """A page of a job's log: the tail, or the lines before ``?before=N``."""
    job = get_object_or_404(Job.objects.select_related("release__project", "deployment__environment"), pk=job_id)
    before = request.GET.get("before", "")
    page = job_log_page(job, int(before) if before.isdigit() else None)
    template = "releases/partials/job_log.html" if request.htmx else "releases/job_log.html"  # type: ignore[attr-defined]
    return render(
        request,
        template,
        {"job": job, "log": page, "release": job.release, "project": job.release.project, "page_size": LOG_PAGE_LINES},
    )


@viewer_required
def artifact_download(request: HttpRequest, artifact_id: int, filename: str) -> FileResponse:
    """Stream a built file from the artifact storage, to signed-in people only."""
    artifact = get_object_or_404(Artifact, pk=artifact_id, filename=filename)
    require_permission(request, "releases.view_artifact")
    handle = storages["artifacts"].open(artifact.path, "rb")
    return FileResponse(handle, as_attachment=True, filename=artifact.filename, content_type="application/octet-stream")
