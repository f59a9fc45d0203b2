"""The headless commands refuse bad input with one line, writing nothing and running nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from releases.models import AuditEvent, Deployment, Environment, Job, Project, Release
from tests.conftest import index_environment
from tests.support.sample import git
from tests.support.worker import child_process_env

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_process_env(),
    )


@pytest.fixture
def committed_project(transactional_db, sample_repo):
    result = manage("project_add", "sample-pkg", "--source", str(sample_repo.path))
    assert result.returncode == 0, result.stderr
    return Project.objects.get(name="sample-pkg")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["release_create", "sample-pkg", "v1.0", "--ref", "v1.0.0"], "is not normalized: write it as '1.0'"),
        (["release_create", "sample-pkg", "1.0 ", "--ref", "v1.0.0"], "is not normalized"),
        (["release_create", "sample-pkg", "banana", "--ref", "v1.0.0"], "is not a PEP 440 version"),
        (["release_create", "sample-pkg", "1.0.0", "--ref=-x"], "not starting with '-'"),
        (["release_create", "sample-pkg", "1.0.0", "--ref=--upload-pack=touch /tmp/pwned"], "not a usable git ref"),
        (["release_create", "sample-pkg", "1.0.0", "--ref", "v1.0.0; rm -rf /"], "not a usable git ref"),
        (["release_create", "sample-pkg", "1.0.0", "--ref", "main branch"], "not a usable git ref"),
        (["release_create", "sample-pkg", "1.0.0", "--ref", "$(id)"], "not a usable git ref"),
        (["release_create", "no-such-project", "1.0.0", "--ref", "v1.0.0"], "There is no project named"),
        (["publish", "sample-pkg", "1.0.0", "--to", "test-pypi"], "has no release '1.0.0'"),
        (["project_add", "bad name!", "--source", "/tmp"], "is not a valid project name"),
        (["project_add", "other", "--source", "ext::sh -c touch% /tmp/pwned"], "is not a git URL or a local path"),
        (["environment_add", "x", "--upload-url", "ftp://h/", "--index-url", "http://h/"], "not an http or https URL"),
        (["environment_add", "x", "--upload-url", "javascript:alert(1)", "--index-url", "http://h/"], "not an http"),
        (
            ["environment_add", "x", "--upload-url", "http://h/", "--index-url", "http://h/", "--after", "nope"],
            "no environment named 'nope'",
        ),
        (
            [
                "environment_add",
                "x",
                "--upload-url",
                "http://h/",
                "--index-url",
                "http://h/",
                "--token-file",
                "/nonexistent",
            ],
            "Cannot read the token file",
        ),
    ],
)
def test_bad_input_gets_one_line_and_a_non_zero_exit_and_changes_nothing(committed_project, args, message):
    assert_refused_changing_nothing(args, message)


def row_counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Project, Environment, Release, Job, Deployment, AuditEvent))


def assert_refused_changing_nothing(args: list[str], message: str) -> None:
    counts = row_counts()

    result = manage(*args)

    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert counts == row_counts()
    assert not Path("/tmp/pwned").exists()


@pytest.fixture
def environments(committed_project, sandbox, pypi_account):
    """test-pypi, and pypi, which takes only what succeeded on test-pypi."""
    index_environment(pypi_account, "pypi", "PyPI", after="test-pypi")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ref", "v1.0.0", "v1.0", "--to", "test-pypi"], "is not normalized: write it as '1.0'"),
        (["--ref=-x", "1.0.0", "--to", "test-pypi"], "not starting with '-'"),
        (["--ref", "$(id)", "1.0.0", "--to", "test-pypi"], "not a usable git ref"),
        (["--ref", "v1.0.0; touch /tmp/pwned", "1.0.0", "--to", "test-pypi"], "not a usable git ref"),
        (["--ref", "v1.0.0", "1.0.0", "--to", "nowhere"], "There is no environment named 'nowhere'"),
        # The environment refuses the deployment: the release it would have made is not made either.
        (["--ref", "v1.0.0", "1.0.0", "--to", "pypi"], "must be published and verified on Test PyPI before"),
    ],
)
def test_publish_from_a_ref_refuses_bad_input_before_creating_anything(environments, args, message):
    assert_refused_changing_nothing(["publish", "sample-pkg", *args], message)


def test_publish_from_a_ref_refuses_a_release_that_exists_from_another_ref(environments):
    created = manage("release_create", "sample-pkg", "1.0.0", "--ref", "v1.0.0")
    assert created.returncode == 0, created.stderr

    assert_refused_changing_nothing(
        ["publish", "sample-pkg", "1.0.0", "--ref", "main", "--to", "test-pypi"],
        "sample-pkg 1.0.0 exists already, from 'v1.0.0', not 'main'; a version is built once.",
    )


def test_publish_from_a_ref_creates_builds_publishes_and_verifies_in_one_command(
    worker, committed_project, sandbox, sample_repo, devpi, index_account
):
    result = manage("publish", "sample-pkg", "1.0.0", "--ref", "v1.0.0", "--to", "test-pypi", "--wait", timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    release = Release.objects.get(project=committed_project, version="1.0.0")
    deployment = Deployment.objects.get(release=release)
    lines = result.stdout.splitlines()
    assert lines[0] == "release sample-pkg 1.0.0 created from v1.0.0; build queued"
    assert lines[1] == f"deployment #{deployment.pk}: sample-pkg 1.0.0 to test-pypi, queued"
    assert lines[2] == f"built sample-pkg 1.0.0 at {git(sample_repo.path, 'rev-parse', 'v1.0.0')[:12]}"
    assert sorted(lines[3:5]) == sorted(
        f"  {a.filename}  sha256:{a.sha256}  Installed and checked" for a in release.artifacts.all()
    )
    assert lines[5] == f"deployment #{deployment.pk} succeeded: sample-pkg 1.0.0 is on test-pypi and verified"
    assert deployment.succeeded
    for artifact in release.artifacts.all():
        assert devpi.stored_count(index_account, artifact.filename) == 1
    # The upload was queued by the transaction that recorded the build: nothing waited in between.
    build = Job.objects.get(release=release, kind=Job.Kind.BUILD)
    upload = Job.objects.get(deployment=deployment, kind=Job.Kind.UPLOAD)
    assert build.finished_at is not None
    assert abs((upload.queued_at - build.finished_at).total_seconds()) < 1

    again = manage("publish", "sample-pkg", "1.0.0", "--ref", "v1.0.0", "--to", "test-pypi", "--wait", timeout=300)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "created" not in again.stdout
    assert again.stdout.splitlines()[-1].endswith("succeeded: sample-pkg 1.0.0 is on test-pypi and verified")
    assert Job.objects.filter(release=release, kind=Job.Kind.BUILD).count() == 1


def test_publish_from_a_ref_whose_build_fails_says_why_with_the_build_log(worker, committed_project, sandbox):
    result = manage("publish", "sample-pkg", "2.0.0", "--ref", "v2.0.0", "--to", "test-pypi", "--wait", timeout=300)

    assert result.returncode != 0
    deployment = Deployment.objects.get(release__version="2.0.0")
    assert deployment.outcome == Deployment.Outcome.FAILED
    assert f"deployment #{deployment.pk} failed: The build failed:" in result.stderr
    assert "  | " in result.stderr  # the build's last log lines


def test_publish_to_an_unknown_environment_names_the_known_ones(committed_project, sandbox):
    from releases.services.releases import release_create

    release_create(project=committed_project, version="1.0.0", ref="v1.0.0", actor=None)
    result = manage("publish", "sample-pkg", "1.0.0", "--to", "nowhere")
    assert result.returncode != 0
    assert "There is no environment named 'nowhere' (known: test-pypi)" in result.stderr
