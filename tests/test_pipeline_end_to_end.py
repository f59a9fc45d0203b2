"""The core pipeline against real services: PostgreSQL, Redis, a Celery
worker process, git, uv, twine and devpi-server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command

from releases.models import AuditEvent, Deployment, DeploymentFile, Job, JobLogLine, Release
from releases.services.deployments import deployment_request
from releases.services.projects import project_create
from releases.services.releases import release_create
from releases.steps.tools import uv_bin
from tests.conftest import served, wait_built, wait_final
from tests.support.sample import SampleRepo, git


def test_release_create_then_publish_ends_verified(worker, project, sandbox, devpi, index_account, capsys):
    call_command("release_create", project.name, "1.0.0", "--ref", "v1.0.0", "--wait")
    call_command("publish", project.name, "1.0.0", "--to", "test-pypi", "--wait")
    out = capsys.readouterr().out
    assert "deployment #" in out and "succeeded" in out

    release = Release.objects.get(project=project, version="1.0.0")
    assert release.is_built and len(release.commit) == 40
    artifacts = {a.filename: a for a in release.artifacts.all()}
    assert set(artifacts) == {"sample_pkg-1.0.0.tar.gz", "sample_pkg-1.0.0-py3-none-any.whl"}
    deployment = Deployment.objects.get(release=release)
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED
    assert {f.state for f in deployment.files.all()} == {DeploymentFile.State.VERIFIED}
    # What the index serves is byte for byte what the console built.
    assert served(deployment) == {name: a.sha256 for name, a in artifacts.items()}
    assert deployment.summary["modules"] == ["sample_pkg"]
    for name in artifacts:
        assert devpi.stored_count(index_account, name) == 1
    upload = Job.objects.get(deployment=deployment, kind=Job.Kind.UPLOAD)
    lines = list(JobLogLine.objects.filter(job=upload).values_list("text", flat=True))
    assert any(line.startswith("$ twine upload") for line in lines)
    # sdist first.
    upload_command = next(line for line in lines if line.startswith("$ twine upload"))
    assert upload_command.index(".tar.gz") < upload_command.index(".whl")
    verify = Job.objects.get(deployment=deployment, kind=Job.Kind.VERIFY)
    assert JobLogLine.objects.filter(job=verify, text="imported sample_pkg").exists()
    actions = list(AuditEvent.objects.filter(object_type="deployment").values_list("action", flat=True))
    assert actions == ["deployment.requested", "deployment.uploading", "deployment.verifying", "deployment.succeeded"]


def test_publishing_the_same_release_again_sends_no_file(worker, project, sandbox, devpi, index_account):
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    first = wait_final(deployment_request(release=release, environment=sandbox, actor=None))
    assert first.outcome == Deployment.Outcome.SUCCEEDED
    posts_before = devpi.upload_requests(index_account)

    second = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert second.outcome == Deployment.Outcome.SUCCEEDED
    assert {f.state for f in second.files.all()} == {DeploymentFile.State.VERIFIED}
    upload = Job.objects.get(deployment=second, kind=Job.Kind.UPLOAD)
    skipped = JobLogLine.objects.filter(job=upload, text__endswith="already on the index with the same sha256, skipped")
    assert skipped.count() == 2
    assert devpi.upload_requests(index_account) == posts_before


def test_a_different_file_under_the_same_name_fails_clearly_and_is_not_overwritten(
    worker, project, sandbox, devpi, index_account, sample_repo, tmp_path
):
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    sdist = release.artifacts.get(kind="sdist")
    # Somebody uploaded another build of 1.0.0 by hand before the console did.
    other = tmp_path / "other"
    sample_repo.commit_version("1.0.0", body="CHANGED = True\n")
    subprocess.run(
        [uv_bin(), "build", "--sdist", "--out-dir", str(other), str(sample_repo.path)],
        check=True,
        capture_output=True,
        env={**os.environ, "UV_SYSTEM_CERTS": "1"},
    )
    foreign = other / sdist.filename
    foreign_digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
    assert foreign_digest != sdist.sha256
    devpi.upload_raw(index_account, foreign)

    deployment = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "already has a different sample_pkg-1.0.0.tar.gz" in deployment.reason
    assert "Nothing was overwritten" in deployment.reason
    record = deployment.files.get(artifact=sdist)
    assert record.state == DeploymentFile.State.STOPPED
    assert record.index_sha256 == foreign_digest
    # The wheel was never sent after the sdist conflict, and the sdist is still the foreign one.
    assert deployment.files.get(artifact__kind="wheel").state == DeploymentFile.State.PENDING
    from releases.clients.index import list_files

    assert list_files(index_account.simple_url, project.name)[sdist.filename].sha256 == foreign_digest


@pytest.mark.parametrize("ref", ["no-such-tag"])
def test_a_missing_ref_fails_the_build_with_a_reason(worker, project, ref):
    release = wait_built(release_create(project=project, version="1.0.0", ref=ref, actor=None))
    assert release.outcome == Release.Outcome.FAILED
    assert "does not exist" in release.reason


def test_a_version_that_differs_from_the_metadata_is_refused(worker, project):
    release = wait_built(release_create(project=project, version="2.0.0", ref="v1.0.0", actor=None))
    assert release.outcome == Release.Outcome.FAILED
    assert "this release is sample-pkg 2.0.0" in release.reason
    assert not release.artifacts.exists()


def test_twine_check_warnings_are_kept_and_fail_a_strict_project(worker, project, sample_repo):
    sample_repo.commit_version("1.1.0", tag="v1.1.0", readme="")
    release = wait_built(release_create(project=project, version="1.1.0", ref="v1.1.0", actor=None))
    assert release.outcome == Release.Outcome.BUILT
    assert "`long_description` missing." in release.warnings

    project.strict_checks = True
    project.save(update_fields=["strict_checks"])
    sample_repo.commit_version("1.2.0", tag="v1.2.0", readme="")
    strict = wait_built(release_create(project=project, version="1.2.0", ref="v1.2.0", actor=None))
    assert strict.outcome == Release.Outcome.FAILED
    assert "twine check warned, and this project is strict" in strict.reason
    assert "`long_description` missing." in strict.reason
    assert not strict.artifacts.exists()


def test_a_wheel_that_cannot_be_built_from_the_sdist_fails_the_build(worker, project, sample_repo):
    # The classic: setup.py reads a file that the sdist does not ship, so
    # the project builds from a checkout but not from what users download.
    sample_repo.commit_version("1.1.0")
    pyproject = sample_repo.path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dynamic = ["dependencies"]'))
    (sample_repo.path / "requirements.txt").write_text("")
    (sample_repo.path / "setup.py").write_text(
        "from setuptools import setup\nsetup(install_requires=open('requirements.txt').read().split())\n"
    )
    git(sample_repo.path, "add", "-A")
    git(sample_repo.path, "commit", "--quiet", "-m", "dependencies from requirements.txt")
    git(sample_repo.path, "tag", "v1.1.0")

    release = wait_built(release_create(project=project, version="1.1.0", ref="v1.1.0", actor=None))
    assert release.outcome == Release.Outcome.FAILED
    assert "uv build --wheel" in release.reason
    assert "requirements.txt" in build_log(release)
    assert not release.artifacts.exists()


def build_log(release: Release) -> str:
    return "\n".join(JobLogLine.objects.filter(job__release=release).order_by("number").values_list("text", flat=True))


def test_a_project_reuses_its_build_environment_until_its_build_requirements_change(worker, tmp_path):
    repo = SampleRepo(tmp_path / "envs", name=f"envs-{uuid.uuid4().hex[:8]}")
    project = project_create(name=repo.name, source=str(repo.path), actor=None)
    # An environment nobody has used for three days (former requirements).
    stale = settings.TOOL_CACHE_DIR / "build-envs" / f"stale-{uuid.uuid4().hex[:8]}"
    (stale / "bin").mkdir(parents=True)
    (stale / "ready.json").write_text("{}")
    three_days_ago = time.time() - 3 * 24 * 3600
    os.utime(stale / "ready.json", (three_days_ago, three_days_ago))
    logs = []
    for version in ("1.0.0", "1.1.0"):
        repo.commit_version(version, tag=f"v{version}")
        release = wait_built(release_create(project=project, version=version, ref=f"v{version}", actor=None))
        assert release.outcome == Release.Outcome.BUILT, release.reason
        logs.append(build_log(release))
    assert "making a build environment for setuptools>=61" in logs[0]
    assert not stale.exists()
    assert "--no-build-isolation" in logs[0]
    assert "making a build environment" not in logs[1]
    assert re.search(r"build environment: cached, setuptools==\d", logs[1])

    # Other build requirements, another environment.
    repo.commit_version("1.2.0")
    pyproject = repo.path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"setuptools>=61"', '"setuptools>=61", "wheel"'))
    git(repo.path, "commit", "--quiet", "-am", "wheel too")
    git(repo.path, "tag", "v1.2.0")
    release = wait_built(release_create(project=project, version="1.2.0", ref="v1.2.0", actor=None))
    assert release.outcome == Release.Outcome.BUILT, release.reason
    assert "making a build environment for setuptools>=61, wheel" in build_log(release)


def test_a_build_that_fails_in_a_broken_cached_environment_is_built_in_isolation(worker, tmp_path):
    repo = SampleRepo(tmp_path / "broken", name=f"broken-{uuid.uuid4().hex[:8]}")
    project = project_create(name=repo.name, source=str(repo.path), actor=None)
    repo.commit_version("1.0.0", tag="v1.0.0")
    assert wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None)).is_built
    # The cached environment loses its back-end (a disk cleaner, a bad upgrade).
    folders = [p.parent for p in (settings.TOOL_CACHE_DIR / "build-envs").glob("*/ready.json")]
    mine = [f for f in folders if json.loads((f / "ready.json").read_text()).get("project") == project.name]
    assert len(mine) == 1
    for folder in mine:
        for package in folder.glob("lib/python*/site-packages/setuptools"):
            shutil.rmtree(package)

    repo.commit_version("1.1.0", tag="v1.1.0")
    release = wait_built(release_create(project=project, version="1.1.0", ref="v1.1.0", actor=None))
    assert release.outcome == Release.Outcome.BUILT, release.reason
    assert "the cached build environment could not build it; building again in isolation" in build_log(release)

    repo.commit_version("1.2.0", tag="v1.2.0")
    again = wait_built(release_create(project=project, version="1.2.0", ref="v1.2.0", actor=None))
    assert again.is_built
    assert "making a build environment for setuptools>=61" in build_log(again)
