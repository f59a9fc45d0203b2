"""Environments on the PyPI stand-in, releases from given files, and jobs
run in the test's own process, for the tests of publishing to PyPI."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.utils import timezone

from releases.models import Deployment, Environment, Job, Project, Release
from releases.services.pipeline import job_run
from releases.services.projects import environment_create
from releases.services.releases import release_store_files
from releases.steps.workspace import Workspace
from tests.support.pypi_standin import PypiStandin


def pypi_environment(
    standin: PypiStandin, name: str = "test-pypi", title: str = "Test PyPI", *, account: str = "alice", **options: Any
) -> Environment:
    """An environment on the stand-in with PyPI's rules on, as for pypi.org:
    an API token of ``account``, who is named as the token's account."""
    options.setdefault("require_second_factor", False)
    return environment_create(
        name=name,
        title=title,
        upload_url=standin.upload_url,
        index_url=standin.simple_url,
        username="__token__",
        token=standin.state.token_for(account),
        index_account=account,
        pypi_rules=True,
        actor=None,
        **options,
    )


def stored_release(project: Project, version: str, paths: list[Path], *, commit: str = "0" * 40) -> Release:
    """A release whose files are ``paths``, stored as a build stores them (no build run)."""
    release = Release.objects.create(
        project=project,
        version=version,
        ref=f"v{version}",
        commit=commit,
        state=Release.State.FINISHED,
        outcome=Release.Outcome.BUILT,
        built_at=timezone.now(),
    )
    for artifact in release_store_files(release, sorted(paths, key=lambda p: not p.name.endswith(".tar.gz"))):
        artifact.release = release
        artifact.save()
    return release


def run_jobs(deployment: Deployment, limit: int = 10) -> Deployment:
    """Run the deployment's queued jobs here, one after the other, as a worker would."""
    for _ in range(limit):
        job = Job.objects.filter(deployment=deployment, state=Job.State.QUEUED).order_by("id").first()
        if job is None:
            break
        job_run(job.pk)
    deployment.refresh_from_db()
    return deployment


class LinesLog:
    """A step's log kept in memory, for steps run outside a job."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lost = threading.Event()
        self.full = threading.Event()

    def write(self, text: str) -> None:
        self.lines.extend(text.splitlines())

    def write_lines(self, lines: list[str]) -> None:
        self.lines.extend(lines)


def memory_workspace(folder: Path) -> Workspace:
    return Workspace(job_id=0, workdir=folder, log=LinesLog())
