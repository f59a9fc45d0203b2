"""The headless commands refuse bad input with one line, writing nothing and running nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from releases.models import AuditEvent, Environment, Job, Project, Release
from tests.support.worker import child_process_env

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
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
    counts = (
        Project.objects.count(),
        Environment.objects.count(),
        Release.objects.count(),
        Job.objects.count(),
        AuditEvent.objects.count(),
    )

    result = manage(*args)

    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert counts == (
        Project.objects.count(),
        Environment.objects.count(),
        Release.objects.count(),
        Job.objects.count(),
        AuditEvent.objects.count(),
    )
    assert not Path("/tmp/pwned").exists()


def test_publish_to_an_unknown_environment_names_the_known_ones(committed_project, sandbox):
    from releases.services.releases import release_create

    release_create(project=committed_project, version="1.0.0", ref="v1.0.0", actor=None)
    result = manage("publish", "sample-pkg", "1.0.0", "--to", "nowhere")
    assert result.returncode != 0
    assert "There is no environment named 'nowhere' (known: test-pypi)" in result.stderr
