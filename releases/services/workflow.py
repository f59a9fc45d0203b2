"""Publishing through the project's own GitHub workflow: dispatch it, find
the run it started, and follow that run to its end."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache

from releases.clients.github import GitHubClient, GitHubConfig, JobState, RunState
from releases.errors import StepFailed, TransientError
from releases.models import Deployment, Environment, Project, WorkflowRun
from releases.services.credentials import credential_reveal
from releases.services.handouts import handout_inputs
from releases.services.workflow_runs import (
    workflow_run_adopt,
    workflow_run_forget,
    workflow_run_record_result,
    workflow_run_reserve,
    workflow_run_update,
)
from releases.steps.workspace import Workspace


def github_client(project: Project, *, workflow_file: str = "") -> GitHubClient:
    """The GitHub API as the project's own token sees it, for its publishing
    workflow (or ``workflow_file``)."""
    token = credential_reveal(project.github_credential) if project.github_credential is not None else None
    return GitHubClient(
        project.github_repository,
        workflow_file=workflow_file or project.workflow_file,
        api_url=project.github_api_url,
        token=token,
        config=GitHubConfig(
            timeout=settings.GITHUB_TIMEOUT,
            retries=settings.GITHUB_RETRIES,
            retry_backoff=settings.GITHUB_RETRY_BACKOFF,
            max_wait=settings.GITHUB_MAX_WAIT,
            throttle=settings.GITHUB_THROTTLE,
            logs_max_bytes=settings.GITHUB_LOGS_MAX_BYTES,
        ),
    )


def github_refs(project: Project) -> list[str]:
    """The repository's tags, then its branches, as GitHub lists them.

    Kept for GITHUB_REFS_CACHE_SECONDS so that a form re-rendered while
    someone types does not ask GitHub each time. Raises StepFailed or
    TransientError with a readable reason.
    """
    key = f"github-refs:{project.pk}:{project.github_repository}"
    cached = cache.get(key)
    if isinstance(cached, list):
        return [str(ref) for ref in cached]
    client = github_client(project)
    try:
        refs = client.refs()
    finally:
        client.close()
    cache.set(key, refs, settings.GITHUB_REFS_CACHE_SECONDS)
    return refs


def workflow_inputs(project: Project, environment: Environment) -> dict[str, str]:
    inputs = {str(key): str(value) for key, value in (project.workflow_inputs or {}).items()}
    inputs["environment"] = environment.workflow_environment or environment.name
    return inputs


def dispatch_deployment(ws: Workspace, deployment: Deployment) -> WorkflowRun:
    """1. A run adopted by an earlier attempt of this job is kept: never
       dispatch twice.
    2. Reserve the workflow (one dispatch at a time looks for its run).
    3. Dispatch on the release's ref with the environment's input, the
       approved files' digests and the link to download them
       (``services.handouts``: the workflow publishes exactly those bytes).
    4. Adopt the run GitHub names, or else the oldest run of this workflow
       started by a dispatch on the release's commit since the dispatch,
       that no other deployment has adopted.
    """
    release = deployment.release
    project = release.project
    adopted = deployment.workflow_runs.filter(run_id__isnull=False).first()
    if adopted is not None:
        ws.log.write(f"run {adopted.run_id} was dispatched by an earlier attempt; following it")
        return adopted
    inputs = workflow_inputs(project, deployment.environment)
    client = github_client(project)
    try:
        ws.step(f"reading {project.workflow_file} in {project.github_repository}")
        client.workflow()
        record = deployment.workflow_runs.filter(run_id__isnull=True).first()
        dispatch_error = ""
        if record is not None:
            ws.log.write("an earlier attempt dispatched the workflow; looking for its run")
        else:
            record = _reserve(ws, deployment, inputs)
            try:
                shown = " ".join(f"{k}={v}" for k, v in sorted(inputs.items()))
                ws.step(f"dispatching {project.workflow_file} on {release.ref} ({shown})")
                handout = handout_inputs(deployment)
                ws.log.write(
                    f"with the sha256 of the {len(handout['files'].splitlines())} approved files and a single-use "
                    "link to download exactly those (files, files_url)"
                )
                run_id = client.dispatch(release.ref, {**inputs, **handout})
            except TransientError as exc:
                # A 5xx to a dispatch does not say the run did not start.
                dispatch_error = str(exc)
                ws.log.write(f"{exc} Looking for the run in case it started.")
                run_id = None
            except StepFailed:
                workflow_run_forget(record)
                raise
            if run_id is not None:
                ws.log.write(f"GitHub named the run: {run_id}")
                if not workflow_run_adopt(record, run_id):
                    workflow_run_forget(record)
                    raise StepFailed(f"GitHub named run {run_id}, which another deployment already follows.")
        try:
            if record.run_id is None:
                _find_and_adopt(ws, client, record, release.commit, dispatch_error)
        finally:
            workflow_run_forget(record)
        assert record.run_id is not None
        state = client.run(record.run_id)
        workflow_run_update(record, status=state.status, conclusion=state.conclusion, html_url=state.html_url)
        ws.log.write(f"run {state.id}: {state.html_url} ({state.status})")
        return record
    finally:
        client.close()


def _reserve(ws: Workspace, deployment: Deployment, inputs: dict[str, str]) -> WorkflowRun:
    deadline = time.monotonic() + 2 * settings.GITHUB_FIND_RUN_TIMEOUT
    delay = settings.GITHUB_POLL_INTERVAL
    while True:
        record = workflow_run_reserve(deployment, head_sha=deployment.release.commit, inputs=inputs)
        if record is not None:
            return record
        if time.monotonic() >= deadline:
            raise StepFailed(
                "Another dispatch of this workflow is still looking for its run; publish again in a minute."
            )
        ws.check_owned()
        ws.log.write("another dispatch of this workflow is finding its run; waiting for it")
        time.sleep(delay)
        delay = min(delay * 2, settings.GITHUB_POLL_MAX)


def _find_and_adopt(ws: Workspace, client: GitHubClient, record: WorkflowRun, commit: str, dispatch_error: str) -> None:
    ws.step(f"looking for the run on {commit[:12]}")
    since = record.dispatched_at - timedelta(seconds=settings.GITHUB_CLOCK_SKEW)
    deadline = time.monotonic() + settings.GITHUB_FIND_RUN_TIMEOUT
    delay = settings.GITHUB_POLL_INTERVAL
    while True:
        candidates = client.find_runs(commit, since)
        taken = set(
            WorkflowRun.objects.filter(run_id__in=[run.id for run in candidates]).values_list("run_id", flat=True)
        )
        for run in candidates:
            if run.id not in taken and workflow_run_adopt(record, run.id):
                ws.log.write(f"found run {run.id} ({run.html_url})")
                return
        if time.monotonic() >= deadline:
            cause = f" The dispatch itself failed: {dispatch_error}" if dispatch_error else ""
            raise StepFailed(
                f"No run of {record.workflow_file} on commit {commit[:12]} started within "
                f"{settings.GITHUB_FIND_RUN_TIMEOUT} s of the dispatch.{cause}"
            )
        ws.check_owned()
        time.sleep(delay)
        delay = min(delay * 2, settings.GITHUB_POLL_MAX)


def track_deployment(ws: Workspace, deployment: Deployment) -> WorkflowRun:
    """1. Poll the run with backoff (a ``workflow_run`` webhook wakes the
       poll early) until it is completed.
    2. Store its conclusion, jobs and steps, and its logs in this job's log.
    3. Anything but success fails, naming the failing job and step.
    """
    record = deployment.workflow_runs.filter(run_id__isnull=False).first()
    if record is None or record.run_id is None:
        raise StepFailed("This deployment has no workflow run to follow; publish again.")
    client = github_client(deployment.release.project)
    try:
        ws.step(f"following run {record.run_id}")
        deadline = time.monotonic() + settings.GITHUB_RUN_TIMEOUT
        delay = settings.GITHUB_POLL_INTERVAL
        last = ""
        while True:
            ws.check_owned()
            state = client.run(record.run_id)
            workflow_run_update(record, status=state.status, conclusion=state.conclusion, html_url=state.html_url)
            if state.status != last:
                ws.log.write(f"run {state.id} is {state.status}")
                last = state.status
            if state.status == "completed":
                break
            if time.monotonic() >= deadline:
                raise StepFailed(
                    f"Run {state.html_url} did not finish within {settings.GITHUB_RUN_TIMEOUT} s; "
                    "look at it on GitHub, then publish again."
                )
            _wait(record, delay)
            delay = min(delay * 2, settings.GITHUB_POLL_MAX)
        ws.step(f"reading the jobs of run {record.run_id}")
        jobs = client.run_jobs(record.run_id)
        for job in jobs:
            ws.log.write(f"job {job.name}: {job.conclusion or job.status}")
            for step in job.steps:
                ws.log.write(f"  step {step['number']} {step['name']}: {step['conclusion'] or step['status']}")
        workflow_run_update(
            record,
            status=state.status,
            conclusion=state.conclusion,
            html_url=state.html_url,
            jobs=[job.as_dict() for job in jobs],
        )
        workflow_run_record_result(record)
        ws.step(f"downloading the logs of run {record.run_id}")
        try:
            write_logs(ws, client.run_logs(record.run_id))
        except (StepFailed, TransientError) as exc:
            ws.log.write(f"the run's logs could not be stored: {exc}")
        if state.conclusion != "success":
            raise StepFailed(failure_reason(state, jobs))
        return record
    finally:
        client.close()


def _wait(record: WorkflowRun, seconds: float) -> None:
    """Sleep up to ``seconds``, waking when a webhook marks the run completed."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))
        if WorkflowRun.objects.filter(pk=record.pk, status="completed").exists():
            return


def write_logs(ws: Workspace, archive: bytes) -> None:
    """Each file of the logs archive into the job log (redacted on the way)."""
    try:
        bundle = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        ws.log.write("the run's logs archive is not a zip file; not stored")
        return
    budget = settings.GITHUB_LOGS_MAX_BYTES
    with bundle:
        for info in sorted(bundle.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            if info.file_size > budget:
                ws.log.write(
                    f"--- {info.filename} and the rest: left out, beyond {settings.GITHUB_LOGS_MAX_BYTES} bytes"
                )
                return
            budget -= info.file_size
            ws.log.write(f"--- {info.filename} ---")
            ws.log.write(bundle.read(info).decode("utf-8", errors="replace"))


def failure_reason(state: RunState, jobs: list[JobState]) -> str:
    reason = f"The workflow run ended {state.conclusion or state.status!r}"
    failed = next((job for job in jobs if job.conclusion not in ("success", "skipped", "")), None)
    if failed is not None:
        reason += f": job {failed.name!r} ended {failed.conclusion!r}"
        step = next((s for s in failed.steps if s.get("conclusion") not in ("success", "skipped", None, "")), None)
        if step is not None:
            reason += f" at step {step['name']!r}"
    return f"{reason}. See {state.html_url}"
