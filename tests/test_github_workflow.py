"""Publishing through the project's GitHub workflow, against a loopback
stand-in for the GitHub API, a real worker, and a real devpi index."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.db import connection
from django.urls import reverse

from releases.models import Artifact, Deployment, Environment, Job, JobLogLine, Project, Release, WorkflowRun
from releases.services.deployments import deployment_request
from releases.services.pipeline import job_run
from releases.services.projects import environment_create, project_set_github
from releases.services.releases import release_create
from releases.services.workflow_runs import (
    RUN_UPDATED,
    workflow_run_adopt,
    workflow_run_from_webhook,
    workflow_run_reserve,
)
from releases.steps.tools import uv_bin
from tests.conftest import served, wait_built, wait_final, wait_for
from tests.support.console import ReleaseFactory
from tests.support.devpi import DevpiServer, IndexAccount
from tests.support.github_standin import GitHubStandIn, Run
from tests.support.people import make_user
from tests.support.sample import SampleRepo, git


@pytest.fixture
def github(sample_repo: SampleRepo) -> Iterator[GitHubStandIn]:
    commit = git(sample_repo.path, "rev-parse", "v1.0.0^{commit}")
    standin = GitHubStandIn(refs={"v1.0.0": commit, "main": commit}, tags=["v1.0.0"], branches=["main"])
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def workflow_project(project: Project, github: GitHubStandIn) -> Project:
    return project_set_github(
        project,
        repository=github.repository,
        api_url=github.url,
        token=github.token,
        workflow_inputs={"python": "3.12"},
        publish_mode=Project.PublishMode.WORKFLOW,
        actor=None,
    )


def publish_from_storage(devpi: DevpiServer, account: IndexAccount, version: str):
    """What the real workflow does on success: put the release's files on the index."""

    def on_success(run: Run) -> None:
        storage = storages["artifacts"]
        try:
            with tempfile.TemporaryDirectory() as folder:
                for artifact in Artifact.objects.filter(release__version=version).order_by("kind"):
                    path = Path(folder) / artifact.filename
                    with storage.open(artifact.path, "rb") as source:
                        path.write_bytes(source.read())
                    devpi.upload_raw(account, path)
        finally:
            connection.close()

    return on_success


def log_of(job: Job) -> list[str]:
    return list(JobLogLine.objects.filter(job=job).values_list("text", flat=True))


def built_release(project: Project, github: GitHubStandIn) -> Release:
    """A release recorded as built (no build run): enough for dispatch tests."""
    return ReleaseFactory(
        project=project,
        version="1.0.0",
        commit=github.refs["v1.0.0"],
        files={"sample_pkg-1.0.0.tar.gz": b"an sdist"},
    )


def run_dispatch(deployment: Deployment) -> Deployment:
    """Run the deployment's dispatch job here, as a worker would."""
    job = Job.objects.get(deployment=deployment, kind=Job.Kind.DISPATCH)
    job_run(job.pk)
    deployment.refresh_from_db()
    return deployment


# -- the whole path, with a worker and the index ---------------------------------


def test_workflow_publish_dispatches_tracks_stores_logs_and_verifies(
    worker, workflow_project, sandbox, github, devpi, index_account
):
    github.scenario.on_success = publish_from_storage(devpi, index_account, "1.0.0")
    release = wait_built(release_create(project=workflow_project, version="1.0.0", ref="v1.0.0", actor=None))

    deployment = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    # Dispatched once, on the release's tag, with the environment's input and the project's own,
    # the approved files' digests and the link to download exactly those.
    (dispatch,) = github.dispatches
    inputs = dispatch["inputs"]
    assert (dispatch["ref"], dispatch["return_run_details"]) == ("v1.0.0", True)
    assert sorted(inputs) == ["environment", "files", "files_url", "python"]
    assert (inputs["environment"], inputs["python"]) == ("test-pypi", "3.12")
    assert inputs["files"].splitlines() == [
        f"{a.sha256}  {a.filename}" for a in release.artifacts.order_by("kind", "filename")
    ]
    run = WorkflowRun.objects.get(deployment=deployment)
    assert run.run_id == github.runs[0].id
    assert run.conclusion == "success"
    assert run.html_url == f"https://github.com/acme/sample-pkg/actions/runs/{run.run_id}"
    assert [step["name"] for step in run.jobs[0]["steps"]] == ["Check out", "Build", "Publish to PyPI"]
    assert deployment.summary["workflow"]["html_url"] == run.html_url
    kinds = list(deployment.jobs.order_by("created_at").values_list("kind", flat=True))
    assert kinds == [Job.Kind.DISPATCH, Job.Kind.TRACK, Job.Kind.VERIFY]
    track = deployment.jobs.get(kind=Job.Kind.TRACK)
    lines = log_of(track)
    assert "--- publish/3_Publish to PyPI.txt ---" in lines
    assert any(line.endswith("environment=test-pypi") for line in lines)
    # Verified by the console itself on the index, with the digests found there.
    verify = deployment.jobs.get(kind=Job.Kind.VERIFY)
    assert "imported sample_pkg" in log_of(verify)
    assert served(deployment) == {a.filename: a.sha256 for a in release.artifacts.all()}
    actions = list(deployment.release.audit_events.values_list("action", flat=True))
    assert "workflow.dispatched" in actions and "workflow.completed" in actions


def test_a_failed_run_fails_the_deployment_naming_the_job_and_step(worker, workflow_project, sandbox, github):
    github.scenario.conclusion = "failure"
    release = wait_built(release_create(project=workflow_project, version="1.0.0", ref="v1.0.0", actor=None))

    deployment = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "ended 'failure'" in deployment.reason
    assert "job 'publish'" in deployment.reason and "step 'Publish to PyPI'" in deployment.reason
    assert "https://github.com/acme/sample-pkg/actions/runs/" in deployment.reason
    assert not deployment.jobs.filter(kind=Job.Kind.VERIFY).exists()
    track = deployment.jobs.get(kind=Job.Kind.TRACK)
    assert "ERROR HTTPError: 400 Bad Request" in " ".join(log_of(track))
    assert WorkflowRun.objects.get(deployment=deployment).conclusion == "failure"


# -- dispatch and run finding, run here -------------------------------------------


@pytest.fixture
def first_environment(transactional_db, monkeypatch) -> Environment:
    # These tests run each job themselves: nothing is sent to a worker that
    # an earlier test may have left running.
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    return environment_create(
        name="test-pypi", upload_url="http://127.0.0.1:9/up/", index_url="http://127.0.0.1:9/simple/", actor=None
    )


def test_a_run_is_found_by_listing_when_the_dispatch_answers_204(workflow_project, github, first_environment):
    github.scenario.return_run_details = False
    github.scenario.run_delay = 0.2
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.state == Deployment.State.UPLOADING
    assert WorkflowRun.objects.get(deployment=deployment).run_id == github.runs[0].id
    assert github.count("GET", "/actions/workflows/161335/runs") >= 1
    assert Job.objects.filter(deployment=deployment, kind=Job.Kind.TRACK, state=Job.State.QUEUED).exists()


def test_two_dispatches_close_together_each_adopt_their_own_run(workflow_project, github, first_environment):
    github.scenario.return_run_details = False
    github.scenario.run_delay = 0.3
    staging = environment_create(
        name="staging", upload_url="http://127.0.0.1:9/up/", index_url="http://127.0.0.1:9/simple/", actor=None
    )
    release = built_release(workflow_project, github)
    deployments = [
        deployment_request(release=release, environment=env, actor=None) for env in (first_environment, staging)
    ]
    jobs = [Job.objects.get(deployment=d, kind=Job.Kind.DISPATCH).pk for d in deployments]

    def run(job_id: int) -> None:
        try:
            job_run(job_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    runs_by_id = {run.id: run for run in github.runs}
    assert len(runs_by_id) == 2
    adopted = {d.environment.name: WorkflowRun.objects.get(deployment=d).run_id for d in deployments}
    assert len(set(adopted.values())) == 2
    for environment_name, run_id in adopted.items():
        assert runs_by_id[run_id].inputs["environment"] == environment_name


def test_the_dispatch_waits_for_approvals_like_an_upload(workflow_project, github, first_environment):
    deployment = deployment_request(
        release=built_release(workflow_project, github),
        environment=first_environment,
        actor=make_user("rita", "releaser"),
    )
    # Approvals were required after the request: the job's own check refuses.
    Deployment.objects.filter(pk=deployment.pk).update(required_approvals=1)

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "Not dispatched" in deployment.reason
    assert github.dispatches == []


# -- GitHub's errors -----------------------------------------------------------------


def test_a_workflow_without_a_dispatch_trigger_fails_with_a_422_explained(workflow_project, github, first_environment):
    github.fail("dispatch", 422, body={"message": "Workflow does not have 'workflow_dispatch' trigger"})
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "422" in deployment.reason and "on: workflow_dispatch" in deployment.reason
    assert not WorkflowRun.objects.exists()  # the workflow is free for the next dispatch


def test_a_wrong_workflow_file_fails_with_a_404_explained(workflow_project, github, first_environment):
    Project.objects.filter(pk=workflow_project.pk).update(workflow_file="release.yml")
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "404" in deployment.reason and "release.yml" in deployment.reason
    assert github.dispatches == []


def test_a_bad_token_fails_with_a_401_explained_and_never_shown(workflow_project, github, first_environment):
    github.token = "ghp_" + "t" * 36  # GitHub no longer knows the project's token
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "401 Bad credentials" in deployment.reason
    assert "s" * 36 not in deployment.reason
    assert not JobLogLine.objects.filter(text__contains="s" * 36).exists()


def test_server_errors_are_retried_then_the_dispatch_goes_through(workflow_project, github, first_environment):
    github.fail("workflow", 502, times=2)
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.state == Deployment.State.UPLOADING
    assert github.count("GET", "/actions/workflows/publish.yml") == 3
    assert len(github.dispatches) == 1


def test_a_server_error_on_the_dispatch_is_not_replayed_and_the_started_run_is_found(
    workflow_project, github, first_environment
):
    github.scenario.run_despite_error = True
    github.fail("dispatch", 500)
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.state == Deployment.State.UPLOADING
    assert github.count("POST", "/dispatches") == 1
    assert WorkflowRun.objects.get(deployment=deployment).run_id == github.runs[0].id


def test_server_errors_that_persist_fail_with_a_retry_later_message(workflow_project, github, first_environment):
    github.fail("workflow", 503, times=20)
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "answered 503" in deployment.reason and "try again later" in deployment.reason
    assert github.count("GET", "/actions/workflows/publish.yml") == 4  # the first try and three retries
    assert github.dispatches == []


def test_a_secondary_rate_limit_with_retry_after_is_retried(workflow_project, github, first_environment):
    github.fail_secondary_rate_limit("dispatch", times=2)
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.state == Deployment.State.UPLOADING
    assert github.count("POST", "/dispatches") == 3
    assert len(github.dispatches) == 1


def test_a_token_without_actions_write_fails_with_a_403_explained(workflow_project, github, first_environment):
    github.fail("dispatch", 403, body={"message": "Resource not accessible by personal access token"})
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "403: Resource not accessible" in deployment.reason and "Actions read and write" in deployment.reason
    assert github.count("POST", "/dispatches") == 1  # a plain 403 is not retried


def test_a_429_with_retry_after_is_retried(workflow_project, github, first_environment):
    github.fail("runs", 429, headers={"Retry-After": "5"}, body={"message": "Too many requests"})
    github.scenario.return_run_details = False
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.state == Deployment.State.UPLOADING
    assert WorkflowRun.objects.get(deployment=deployment).run_id == github.runs[0].id


def test_a_used_up_rate_limit_fails_saying_when_it_resets(workflow_project, github, first_environment):
    github.fail_primary_rate_limit("repo")
    deployment = deployment_request(
        release=built_release(workflow_project, github), environment=first_environment, actor=None
    )

    deployment = run_dispatch(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "quota is used up until" in deployment.reason
    assert github.dispatches == []


def test_a_workflow_that_publishes_other_bytes_than_the_approved_ones_fails_the_verify(
    worker, workflow_project, sandbox, github, devpi, index_account, sample_repo, tmp_path
):
    release = wait_built(release_create(project=workflow_project, version="1.0.0", ref="v1.0.0", actor=None))
    # A workflow that ignores the approved files and builds the tag again on
    # its own runner: other bytes, same names.
    sample_repo.commit_version("1.0.0", body="BUILT_BY_THE_WORKFLOW = True\n")
    out = tmp_path / "workflow-dist"
    subprocess.run(
        [uv_bin(), "build", "--sdist", "--wheel", "--out-dir", str(out), str(sample_repo.path)],
        check=True,
        capture_output=True,
        env={**os.environ, "UV_SYSTEM_CERTS": "1"},
    )
    published = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir() if p.suffix in (".whl", ".gz")
    }
    github.scenario.on_success = lambda run: [
        devpi.upload_raw(index_account, out / name) for name in sorted(published, key=lambda n: not n.endswith(".gz"))
    ]

    deployment = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert deployment.outcome == Deployment.Outcome.FAILED
    sdist = release.artifacts.get(kind="sdist")
    assert deployment.reason == (
        f"Verify failed: The index lists {sdist.filename} with sha256 {published[sdist.filename]}, but the release's "
        f"file has {sdist.sha256}: it is not the file the console built."
    )
    assert not deployment.files.filter(state="verified").exists()


def test_a_workflow_run_webhook_ends_the_wait_between_two_polls(workflow_project, github, first_environment, settings):
    settings.GITHUB_POLL_INTERVAL = 3600
    settings.GITHUB_POLL_MAX = 3600
    github.scenario.polls_until_done = 10**6
    deployment = run_dispatch(
        deployment_request(release=built_release(workflow_project, github), environment=first_environment, actor=None)
    )
    track = Job.objects.get(deployment=deployment, kind=Job.Kind.TRACK)

    def follow() -> None:
        try:
            job_run(track.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=follow)
    thread.start()
    run = github.runs[0]
    # Read once by the dispatch, once by the first poll: the job now waits.
    wait_for(lambda: github.count("GET", f"/actions/runs/{run.id}") >= 2)
    github.complete(run)
    assert (
        workflow_run_from_webhook(workflow_project, github.workflow_run_event(run, status="completed")) == RUN_UPDATED
    )
    # Without the webhook the next poll would come an hour later.
    thread.join(60)

    assert not thread.is_alive()
    track.refresh_from_db()
    assert track.outcome == Job.Outcome.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.VERIFYING


def test_project_refs_offers_tags_then_branches_to_signed_in_people(
    client, django_user_model, workflow_project, github
):
    url = reverse("releases:project_refs", args=[workflow_project.name])
    assert client.get(url).status_code == 302  # to the sign-in page
    client.force_login(make_user("viewer-only"))
    assert client.get(url).status_code == 403  # GitHub is asked for releasers only
    assert github.count("GET", "/tags") == 0
    client.force_login(make_user("releaser", "releaser"))

    first = client.get(url).json()
    second = client.get(url).json()

    assert first == second == {"refs": ["v1.0.0", "main"], "error": ""}
    assert github.count("GET", "/tags") == 1  # the second answer came from the cache


def test_project_refs_explains_why_github_could_not_be_asked(client, django_user_model, workflow_project, github):
    github.token = "ghp_" + "u" * 36
    client.force_login(make_user("releaser", "releaser"))

    answer = client.get(reverse("releases:project_refs", args=[workflow_project.name])).json()

    assert answer["refs"] == []
    assert "401 Bad credentials" in answer["error"]


def test_a_run_is_adopted_by_one_deployment_only(workflow_project, github, first_environment):
    staging = environment_create(
        name="staging", upload_url="http://127.0.0.1:9/up/", index_url="http://127.0.0.1:9/simple/", actor=None
    )
    release = built_release(workflow_project, github)
    first, second = (
        deployment_request(release=release, environment=env, actor=None) for env in (first_environment, staging)
    )
    mine = workflow_run_reserve(first, head_sha=release.commit, inputs={})
    assert mine is not None
    # While one dispatch looks for its run, a second dispatch of the workflow waits.
    assert workflow_run_reserve(second, head_sha=release.commit, inputs={}) is None
    assert workflow_run_adopt(mine, 101)
    theirs = workflow_run_reserve(second, head_sha=release.commit, inputs={})
    assert theirs is not None

    assert not workflow_run_adopt(theirs, 101)
    assert workflow_run_adopt(theirs, 102)
