"""Which files a build makes the release's: the console's sdist, and its
wheels as PyPI takes them.

* Wheels with compiled code built here are repaired by auditwheel to the
  machine's manylinux policy (``Project.repair_wheels``): the repaired
  wheel is the artifact, the ``linux_`` one is never stored.
* Or the wheels come from CI (``Project.wheels_workflow``): the project's
  workflow (cibuildwheel or any) builds them on every platform it has; a
  collect job takes the run's artifacts for the release's commit, checks
  them against the release and keeps them beside the console's own sdist.
  The console's own wheel was built from the sdist as a check only.

From then on they are the release's files: one set of digests, approved
once, promoted unchanged."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from releases.clients.github import GitHubClient, RunState
from releases.errors import StepFailed
from releases.models import Artifact, Release
from releases.services.workflow import github_client
from releases.steps.build import BuildOutput
from releases.steps.ci_wheels import CollectedWheel, extract_wheels
from releases.steps.wheel_repair import repair_wheels
from releases.steps.workspace import Workspace

# Where a stored file came from: filename -> (Artifact.Origin, detail).
Origins = dict[str, tuple[str, str]]


def release_files(ws: Workspace, release: Release, built: BuildOutput) -> tuple[list[Path], Origins]:
    """The files of the build to store as the release's, sdist first, with
    where each came from. A project whose wheels come from CI keeps only
    its sdist here; a collect job, on a publisher (it needs the GitHub
    token, which a builder never holds), adds the wheels
    (``ci_wheels_files``)."""
    project = release.project
    sdists = [path for path in built.files if path.name.endswith(".tar.gz")]
    wheels = [path for path in built.files if path.suffix == ".whl"]
    origins: Origins = {}
    if project.wheels_workflow:
        ws.log.write(
            f"built {', '.join(w.name for w in wheels)} from the sdist as a check; the release's wheels will be "
            f"those of {project.wheels_workflow} on {built.commit[:12]}"
        )
        return sdists, origins
    if not project.repair_wheels:
        return sdists + wheels, origins
    for repaired in repair_wheels(ws, wheels, ws.workdir / "dist" / "repaired"):
        wheels = [repaired.path if path.name == repaired.original else path for path in wheels]
        origins[repaired.path.name] = (
            Artifact.Origin.REPAIRED,
            f"repaired by auditwheel from {repaired.original} (sha256 {repaired.original_sha256})",
        )
    return sdists + wheels, origins


def ci_wheels_files(ws: Workspace, release: Release) -> tuple[list[Path], Origins]:
    """The wheels of the project's CI run on the release's commit, with where each came from."""
    workflow = release.project.wheels_workflow
    collected = ci_wheels_collect(ws, release, release.commit)
    ws.log.write(f"the release's wheels are the {len(collected.wheels)} of {workflow} run {collected.run.id}")
    origins: Origins = {
        wheel.path.name: (Artifact.Origin.COLLECTED, collected.detail(wheel, workflow)) for wheel in collected.wheels
    }
    return [wheel.path for wheel in collected.wheels], origins


@dataclass(frozen=True)
class CiWheels:
    run: RunState
    wheels: list[CollectedWheel]

    def detail(self, wheel: CollectedWheel, workflow: str) -> str:
        return f"{workflow} run {self.run.id} on {self.run.head_sha[:12]}, artifact {wheel.archive!r} ({self.run.html_url})"


def ci_wheels_collect(ws: Workspace, release: Release, commit: str) -> CiWheels:
    """1. Wait (up to CI_WHEELS_WAIT_SECONDS) for a successful run of the
       project's wheels workflow on ``commit``; the newest run having failed
       fails the build at once.
    2. Download each of its artifacts (none expired) into the job's folder.
    3. Take out the wheels, each checked against the release's name and
       version (``steps.ci_wheels``).
    """
    project = release.project
    client = github_client(project, workflow_file=project.wheels_workflow)
    try:
        run = _successful_run(ws, client, commit)
        ws.step(f"collecting the wheels of {project.wheels_workflow} run {run.id}")
        folder = ws.workdir / "ci"
        folder.mkdir(exist_ok=True)
        archives = []
        for artifact in client.run_artifacts(run.id):
            if artifact.expired:
                raise StepFailed(
                    f"The artifact {artifact.name!r} of run {run.id} has expired on GitHub; run {project.wheels_workflow} "
                    "again on the release's commit."
                )
            ws.log.write(f"downloading artifact {artifact.name!r} ({artifact.size} bytes)")
            path = client.artifact_archive(
                artifact, folder / f"artifact-{artifact.id}.zip", max_bytes=settings.CI_ARTIFACT_MAX_BYTES
            )
            archives.append((artifact.name, path))
    finally:
        client.close()
    wheels = extract_wheels(ws, archives, project=project.name, version=release.version, out=ws.workdir / "dist" / "ci")
    return CiWheels(run, wheels)


def _successful_run(ws: Workspace, client: GitHubClient, commit: str) -> RunState:
    workflow = client.workflow_file
    ws.step(f"looking for a successful run of {workflow} on {commit[:12]}")
    deadline = time.monotonic() + settings.CI_WHEELS_WAIT_SECONDS
    delay = settings.GITHUB_POLL_INTERVAL
    said = ""
    while True:
        runs = client.commit_runs(commit)
        succeeded = next((run for run in runs if run.conclusion == "success"), None)
        if succeeded is not None:
            ws.log.write(f"run {succeeded.id} of {workflow} succeeded on {commit[:12]}: {succeeded.html_url}")
            return succeeded
        newest = runs[0] if runs else None
        if newest is not None and newest.status == "completed":
            raise StepFailed(
                f"The newest run of {workflow} on {commit[:12]} ended {newest.conclusion!r} ({newest.html_url}): "
                "its wheels cannot be the release's. Fix the workflow, then create a new version."
            )
        if time.monotonic() >= deadline:
            raise StepFailed(
                f"No run of {workflow} on {commit[:12]} succeeded within {settings.CI_WHEELS_WAIT_SECONDS} s; "
                "the release needs its wheels from CI."
            )
        state = f"run {newest.id} is {newest.status}" if newest is not None else "no run yet"
        if state != said:
            ws.log.write(f"{workflow} on {commit[:12]}: {state}; waiting")
            said = state
        ws.check_owned()
        time.sleep(delay)
        delay = min(delay * 2, settings.GITHUB_POLL_MAX)
