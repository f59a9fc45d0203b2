"""The release page: artifacts, one action per environment, live job logs,
the deployment summaries and the audit timeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import content_disposition_header, quote_etag
from django.views.decorators.http import require_POST

from releases.clients import artifacts
from releases.clients.artifacts import ArtifactMissing, ArtifactStorageError
from releases.models import Artifact, Deployment, Environment, Job, Release
from releases.selectors.live import release_fingerprint
from releases.selectors.release_pages import (
    LOG_PAGE_LINES,
    job_log_page,
    release_deployments,
    release_has_sbom,
    release_jobs,
    release_timeline,
)
from releases.services.deployments import (
    PERMISSION,
    Blocker,
    deployment_blockers,
    deployment_request,
    environment_action,
)
from releases.views.access import require_permission, viewer_required
from releases.views.live import LIVE_POLL, WAITING_POLL
from releases.views.lookups import release_or_404


@dataclass(frozen=True)
class EnvironmentPanel:
    """One environment on the release page: its newest deployment, the
    action, and what stands in its way (``deployment_blockers``)."""

    environment: Environment
    deployment: Deployment | None
    action: str  # "Publish to Test PyPI" / "Request push to PyPI"
    blockers: list[Blocker]

    @property
    def offered(self) -> bool:
        """The button is there exactly when the service would take the click."""
        return not self.blockers

    @property
    def allowed(self) -> bool:
        """The viewer holds the permission: the reasons are theirs to read."""
        return all(b.code != PERMISSION for b in self.blockers)


def _panels(request: HttpRequest, release: Release, deployments: list[Deployment]) -> list[EnvironmentPanel]:
    environments = list(Environment.objects.select_related("requires_success_in").order_by("position", "name"))
    newest: dict[int, Deployment] = {}
    for deployment in deployments:  # newest first
        newest.setdefault(deployment.environment_id, deployment)
    return [
        EnvironmentPanel(
            environment=environment,
            deployment=newest.get(environment.pk),
            action=environment_action(environment)[0],
            blockers=deployment_blockers(release, environment, request.user),
        )
        for environment in environments
    ]


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
    active = bool(running) or release.is_building or any(d.state in Deployment.RUNNING_STATES for d in deployments)
    waiting = any(d.awaits_approval for d in deployments)
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
        "summaries": [d for d in deployments if d.succeeded and d.summary],
        "deployments": deployments,
        "active": active,
        # Followed closely while something runs, now and then while a push
        # waits for someone's approval, not at all once everything has ended;
        # each answer that changes nothing doubles the wait, up to the most
        # (console.js).
        "poll": LIVE_POLL if active else WAITING_POLL if waiting else None,
        # Live too: the timeline and the supply chain change as the jobs run.
        "timeline": release_timeline(release),
        "has_sbom": release_has_sbom(release),
    }


def _chosen_job(request: HttpRequest, jobs: list[Job], running: list[Job]) -> Job | None:
    wanted = request.GET.get("job", "")
    for job in jobs:
        if str(job.pk) == wanted:
            return job
    if running:
        return next((job for job in running if job.state == Job.State.RUNNING), running[0])
    return jobs[-1] if jobs else None


@viewer_required
def release_detail(request: HttpRequest, name: str, version: str) -> HttpResponse:
    release = release_or_404(name, version)
    return render(request, "releases/release.html", _live_context(request, release))


@viewer_required
def release_live(request: HttpRequest, name: str, version: str) -> HttpResponseBase:
    """The part of the release page that changes while jobs run (htmx polls
    it). While nothing it shows has changed, it answers 304 at the cost of a
    few index probes: a page left open costs next to nothing."""
    fingerprint = release_fingerprint(name, version, shown_job=request.GET.get("job", ""))
    if fingerprint is None:
        raise Http404(f"There is no release {version!r} of {name!r}.")
    etag = quote_etag(fingerprint)
    unchanged = get_conditional_response(request, etag=etag)
    if unchanged is not None:
        return unchanged
    release = release_or_404(name, version)
    response = render(request, "releases/partials/release_live.html", _live_context(request, release))
    return _revalidated(response, etag)


def _revalidated(response: HttpResponse, etag: str) -> HttpResponse:
    """Kept by the browser, but asked about again at every poll."""
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    return response


@require_POST
@viewer_required
def release_publish(request: HttpRequest, name: str, version: str, environment: str) -> HttpResponseRedirect:
    """Publish (or ask to publish) a release to one environment.

    A second click, or a second person at the same moment, gets the
    deployment the first one started: the database allows one active
    deployment per release and environment.
    """
    release = release_or_404(name, version)
    target = get_object_or_404(Environment, name=environment)
    action, permission = environment_action(target)
    require_permission(request, permission)  # a refusal without the role is a 403, not a message
    try:
        deployment = deployment_request(release=release, environment=target, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{action}: deployment #{deployment.pk} is {deployment.label.lower()}.")
    return redirect("releases:release", name=release.project.name, version=release.version)


@viewer_required
def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """A page of a job's log: the tail, or the lines before ``?before=N``."""
    job = get_object_or_404(Job.objects.select_related("release__project", "deployment__environment"), pk=job_id)
    before = request.GET.get("before", "")
    page = job_log_page(job, int(before) if before.isdigit() else None)
    template = "releases/partials/job_log.html" if request.htmx else "releases/job_log.html"  # type: ignore[attr-defined]
    release = job.release
    return render(
        request,
        template,
        {
            "job": job,
            "log": page,
            "release": release,
            "project": release.project if release is not None else None,
            "page_size": LOG_PAGE_LINES,
        },
    )


@viewer_required
def artifact_download(request: HttpRequest, artifact_id: int, filename: str) -> HttpResponseBase:
    """Stream a built file from the artifact storage, to signed-in people
    only, checked against its recorded digest as it goes."""
    artifact = get_object_or_404(Artifact, pk=artifact_id, filename=filename)
    require_permission(request, "releases.view_artifact")
    try:
        download = artifacts.open_download(artifact.path, sha256=artifact.sha256, size=artifact.size)
    except ArtifactMissing:
        raise Http404(f"{artifact.filename} is no longer in the artifact storage.") from None
    except ArtifactStorageError as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(download.chunks, content_type="application/octet-stream")
    response["Content-Length"] = str(download.size)
    response["Content-Disposition"] = content_disposition_header(True, artifact.filename)
    return response
