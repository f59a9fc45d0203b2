"""Trusted Publishing of the approved files: the console dispatches the
project's workflow with the approved files' digests and a signed,
single-use link; the workflow's download-and-check step
(docs/fetch_approved.py, run here as docs/publish.yml runs it) downloads
them from the live console and refuses anything but the approved bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings
from django.core.files.storage import storages

from releases.models import AuditEvent, Deployment, Job, JobLogLine, Project, WorkflowRun
from releases.services.deployments import deployment_fail, deployment_request
from releases.services.pipeline import job_run
from releases.services.projects import environment_create, project_create, project_set_github
from tests.support.github_standin import GitHubStandIn
from tests.support.publishing import stored_release
from tests.support.pypi_packages import Built, build_package

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "fetch_approved.py"
COMMIT = "c0ffee" + "0" * 34


@dataclass
class Dispatched:
    deployment: Deployment
    built: Built
    inputs: dict[str, str]


@pytest.fixture
def github() -> Iterator[GitHubStandIn]:
    standin = GitHubStandIn(refs={"v1.0.0": COMMIT}, tags=["v1.0.0"])
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def dispatched(live_server, settings, monkeypatch, github: GitHubStandIn, tmp_path: Path) -> Dispatched:
    """A release of a Trusted Publishing project, its push dispatched to the
    (stand-in) workflow by the console, reachable at the live server."""
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    settings.CONSOLE_URL = live_server.url
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    project = project_set_github(
        project,
        repository=github.repository,
        api_url=github.url,
        token=github.token,
        publish_mode=Project.PublishMode.WORKFLOW,
        actor=None,
    )
    environment = environment_create(
        name="test-pypi", upload_url="http://127.0.0.1:9/legacy/", index_url="http://127.0.0.1:9/simple/", actor=None
    )
    built = build_package(tmp_path, "sample-pkg", "1.0.0")
    release = stored_release(project, "1.0.0", built.paths, commit=COMMIT)
    deployment = deployment_request(release=release, environment=environment, actor=None)
    job_run(Job.objects.get(deployment=deployment, kind=Job.Kind.DISPATCH).pk)
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.UPLOADING, deployment.reason
    (sent,) = github.dispatches
    return Dispatched(deployment, built, dict(sent["inputs"]))


def fetch_approved(inputs: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    """The workflow's step: the inputs in the environment, then the script."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--timeout", "30"],
        env={"PATH": os.environ["PATH"], "APPROVED_FILES": inputs["files"], "FILES_URL": inputs["files_url"]},
        capture_output=True,
        text=True,
        timeout=120,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_dispatch_passes_the_approved_digests_and_a_link_that_is_never_logged_or_stored(dispatched: Dispatched):
    built, inputs = dispatched.built, dispatched.inputs
    assert inputs["environment"] == "test-pypi"
    assert inputs["files"] == f"{sha256(built.sdist)}  {built.sdist.name}\n{sha256(built.wheel)}  {built.wheel.name}"
    assert inputs["files_url"].startswith(f"{django_settings.CONSOLE_URL}/publish-files/")
    token = inputs["files_url"].split("/")[-2]
    assert WorkflowRun.objects.get(deployment=dispatched.deployment).inputs == {"environment": "test-pypi"}
    lines = JobLogLine.objects.filter(job__deployment=dispatched.deployment).values_list("text", flat=True)
    assert any("single-use link" in line for line in lines)
    assert not any(token in line for line in lines)


def test_the_download_step_refuses_a_file_whose_digest_differs_from_the_approved_one(
    dispatched: Dispatched, tmp_path: Path
):
    built = dispatched.built
    forged = hashlib.sha256(b"a wheel built somewhere else").hexdigest()
    inputs = {**dispatched.inputs, "files": dispatched.inputs["files"].replace(sha256(built.wheel), forged)}
    out = tmp_path / "dist"

    step = fetch_approved(inputs, out)

    assert step.returncode == 1
    assert (
        f"::error::Refused: {built.wheel.name} has sha256 {sha256(built.wheel)}, not the approved {forged}: "
        "not publishing anything"
    ) in step.stderr
    # Nothing is left for the publish step, not even the sdist that matched.
    assert not out.exists() or not any(out.iterdir())


def test_the_download_step_gets_exactly_the_approved_files_once(dispatched: Dispatched, tmp_path: Path):
    built = dispatched.built
    out = tmp_path / "dist"

    step = fetch_approved(dispatched.inputs, out)

    assert step.returncode == 0, step.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in built.paths)
    for path in built.paths:
        assert sha256(out / path.name) == sha256(path)
    assert f"2 approved files in {out}, each with its approved sha256" in step.stdout
    handed = AuditEvent.objects.filter(action="file.handed_out", release=dispatched.deployment.release)
    assert sorted(e.data["filename"] for e in handed) == sorted(p.name for p in built.paths)
    assert all(f.handed_out_at is not None for f in dispatched.deployment.files.all())

    # A second run of the workflow (re-run by hand) gets nothing.
    again = fetch_approved(dispatched.inputs, tmp_path / "again")

    assert again.returncode == 1
    assert f"answered 410 for {built.sdist.name}: {built.sdist.name} was downloaded once already" in again.stderr


def test_a_stored_file_that_changed_is_not_handed_out(dispatched: Dispatched, tmp_path: Path):
    artifact = dispatched.deployment.release.artifacts.get(kind="wheel")
    stored = Path(storages["artifacts"].path(artifact.path))
    original = stored.read_bytes()
    stored.chmod(0o644)
    stored.write_bytes(original + b"planted")
    try:
        step = fetch_approved(dispatched.inputs, tmp_path / "dist")
    finally:
        stored.write_bytes(original)  # the store is the session's: leave it as it was

    assert step.returncode == 1
    assert f"the console answered 409 for {artifact.filename}" in step.stderr


def test_the_link_serves_only_its_deployment_while_it_publishes(dispatched: Dispatched, monkeypatch):
    url = dispatched.inputs["files_url"]
    wheel = dispatched.built.wheel.name
    token = url.split("/")[-2]
    forged = url.replace(token, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    assert requests.get(forged + wheel, timeout=10).status_code == 403
    assert requests.get(url + "other-1.0.tar.gz", timeout=10).status_code == 404

    later = time.time() + django_settings.PUBLISH_LINK_MAX_AGE + 1
    with monkeypatch.context() as patch:
        patch.setattr("django.core.signing.time.time", lambda: later)
        expired = requests.get(url + wheel, timeout=10)
    assert (expired.status_code, expired.text) == (410, "This link has expired; publish again from the console.\n")

    deployment_fail(dispatched.deployment, "The run was cancelled on GitHub.")
    ended = requests.get(url + wheel, timeout=10)
    assert ended.status_code == 409
    assert ended.text.startswith(f"Deployment #{dispatched.deployment.pk} is failed;")
    assert not dispatched.deployment.files.filter(handed_out_at__isnull=False).exists()
