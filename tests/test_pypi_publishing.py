"""Publishing to an index that enforces PyPI's upload rules (the PyPI
stand-in, with warehouse's status codes and messages): wheels with compiled
code repaired by auditwheel, the rules checked when the push is asked for
and again right before the first byte, and nothing half-uploaded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from packaging.utils import parse_wheel_filename

from releases.errors import StepFailed
from releases.models import Artifact, Deployment, Environment, Job, JobLogLine
from releases.services.deployments import INDEX_RULE, deployment_blockers, deployment_request
from releases.services.projects import environment_create, project_create
from releases.services.releases import release_create
from releases.steps import pypi_platforms
from releases.steps.wheel_repair import repair_wheels
from tests.conftest import served, wait_built, wait_final
from tests.support.publishing import memory_workspace, pypi_environment, run_jobs, stored_release
from tests.support.pypi_packages import build_package, twine_upload
from tests.support.pypi_standin import PypiStandin
from tests.support.sample import SampleRepo


@pytest.fixture
def c_repo(tmp_path: Path) -> SampleRepo:
    """A project with a C extension that its package imports."""
    repo = SampleRepo(tmp_path / "speedups", "speedups")
    repo.commit_version("1.0.0", tag="v1.0.0", extension=True)
    return repo


def log_of(deployment: Deployment, kind: str) -> list[str]:
    job = deployment.jobs.get(kind=kind)
    return list(JobLogLine.objects.filter(job=job).values_list("text", flat=True))


def platforms(filename: str) -> set[str]:
    return {tag.platform for tag in parse_wheel_filename(filename)[3]}


def test_a_c_extension_release_reaches_pypi_with_only_accepted_tags_and_installs(
    worker, c_repo: SampleRepo, pypi_standin: PypiStandin
):
    project = project_create(name="speedups", source=str(c_repo.path), actor=None)
    environment = pypi_environment(pypi_standin)

    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None), timeout=240)

    assert release.is_built, release.reason
    wheel = release.artifacts.get(kind=Artifact.Kind.WHEEL)
    # auditwheel tagged it for the oldest glibc its symbols allow, and the
    # linux_ wheel the build made was never stored.
    assert wheel.origin == Artifact.Origin.REPAIRED
    assert "manylinux" in wheel.filename and "linux_x86_64" not in wheel.filename.split("-")[-1].split(".")
    assert all(pypi_platforms.accepted(p) for p in platforms(wheel.filename))
    assert wheel.origin_detail.startswith("repaired by auditwheel from speedups-1.0.0-cp311-cp311-linux_x86_64.whl")
    assert deployment_blockers(release, environment, None) == []

    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None), timeout=240)

    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    assert not pypi_standin.errors
    # The index holds exactly the release's files, each sent once (twine sends wheels first), all taken.
    assert [(r.filename, r.status) for r in pypi_standin.uploads] == [
        (wheel.filename, 200),
        ("speedups-1.0.0.tar.gz", 200),
    ]
    assert served(deployment) == {a.filename: a.sha256 for a in release.artifacts.all()}
    # Verified by installing the manylinux wheel from the index: the
    # package imports its compiled module.
    verify = log_of(deployment, Job.Kind.VERIFY)
    assert f"{wheel.filename}: downloaded from {pypi_standin.url}/packages/" in " ".join(verify)
    assert "imported speedups" in verify
    assert deployment.summary["checks"]["provenance"]["passed"] is True
    upload = log_of(deployment, Job.Kind.UPLOAD)
    assert "PyPI's upload rules: nothing the index would refuse" in upload


def test_the_same_release_with_repair_off_is_refused_at_request_time_and_nothing_is_sent(
    worker, c_repo: SampleRepo, pypi_standin: PypiStandin
):
    project = project_create(name="speedups", source=str(c_repo.path), repair_wheels=False, actor=None)
    environment = pypi_environment(pypi_standin)
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None), timeout=240)
    wheel = release.artifacts.get(kind=Artifact.Kind.WHEEL)
    assert wheel.filename == "speedups-1.0.0-cp311-cp311-linux_x86_64.whl"
    line = (
        "speedups-1.0.0-cp311-cp311-linux_x86_64.whl: PyPI refuses the platform tag linux_x86_64; repair the wheel "
        "with auditwheel (auditwheel repair) or build manylinux wheels on CI (cibuildwheel)."
    )

    with pytest.raises(ValidationError) as refused:
        deployment_request(release=release, environment=environment, actor=None)

    assert refused.value.messages == [line]
    blockers = deployment_blockers(release, environment, None)
    assert [(b.code, b.message) for b in blockers] == [(INDEX_RULE, line)]
    # The command says it on a line of its own; nothing was written or sent.
    stderr = io.StringIO()
    with pytest.raises(CommandError, match="PyPI refuses the platform tag linux_x86_64"):
        call_command("publish", "speedups", "1.0.0", "--to", environment.name, stderr=stderr)
    assert not Deployment.objects.filter(release=release).exists()
    assert pypi_standin.uploads == []
    assert pypi_standin.upload_bytes_received == 0


def test_a_private_index_takes_the_linux_wheel_it_accepts(db, pypi_standin: PypiStandin, tmp_path: Path):
    """The rules are the environment's: one without them (a private index) is not held to PyPI's."""
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    built = build_package(tmp_path, extension=True)
    release = stored_release(project, "1.0", built.paths)
    private = environment_create(
        name="private", upload_url="https://devpi.example.org/acme/dev/", index_url="https://devpi.example.org/acme/dev/+simple/",
        token="secret-token-1234", actor=None,
    )  # fmt: skip
    pypi = environment_create(
        name="pypi", upload_url="https://upload.pypi.org/legacy/", index_url="https://pypi.org/simple/", actor=None
    )
    test_pypi = environment_create(
        name="test-pypi", upload_url="https://test.pypi.org/legacy/", index_url="https://test.pypi.org/simple/",
        pypi_rules=False, actor=None,
    )  # fmt: skip

    assert (private.pypi_rules, pypi.pypi_rules, test_pypi.pypi_rules) == (False, True, False)
    assert [b.code for b in deployment_blockers(release, private, None)] == []


def test_the_rules_are_checked_again_before_the_first_byte_and_nothing_is_sent(
    transactional_db, monkeypatch, sample_repo: SampleRepo, pypi_standin: PypiStandin, tmp_path: Path
):
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    project = project_create(name="sample-pkg", source=str(sample_repo.path), actor=None)
    environment = pypi_environment(pypi_standin)
    built = build_package(tmp_path, "sample-pkg", "1.0.0")
    release = stored_release(project, "1.0.0", built.paths)
    deployment = deployment_request(release=release, environment=environment, actor=None)
    assert deployment.state == Deployment.State.QUEUED
    # Between the request and the upload, someone else puts other bytes
    # under the release's sdist name on the index.
    other = build_package(tmp_path / "other", "sample-pkg", "1.0.0", summary="Built elsewhere from other code.")
    assert twine_upload(pypi_standin.upload_url, pypi_standin.state.token_for("alice"), other.sdist).returncode == 0
    sent_before = len(pypi_standin.uploads)

    deployment = run_jobs(deployment)

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert deployment.reason.startswith("Upload failed: Nothing was sent: Test PyPI would refuse 1 thing.")
    assert "sample_pkg-1.0.0.tar.gz: the index already has a different file of this name" in deployment.reason
    assert len(pypi_standin.uploads) == sent_before  # the wheel was not sent either
    upload = log_of(deployment, Job.Kind.UPLOAD)
    assert any(
        line.startswith("PyPI would refuse: sample_pkg-1.0.0.tar.gz")
        and "(PyPI answers 400: File already exists" in line
        for line in upload
    )


def test_a_filename_the_console_once_uploaded_and_the_index_deleted_is_refused_at_request_time(
    transactional_db, monkeypatch, sample_repo: SampleRepo, pypi_standin: PypiStandin, tmp_path: Path
):
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    project = project_create(name="sample-pkg", source=str(sample_repo.path), actor=None)
    environment = pypi_environment(pypi_standin)
    built = build_package(tmp_path, "sample-pkg", "1.0.0")
    release = stored_release(project, "1.0.0", built.paths)
    first = run_jobs(deployment_request(release=release, environment=environment, actor=None))
    assert first.outcome == Deployment.Outcome.SUCCEEDED, first.reason
    # An owner deletes the wheel on the index; only the console remembers it sent that name.
    pypi_standin.state.delete_file(built.wheel.name)

    blockers = deployment_blockers(release, environment, None)

    assert [b.message for b in blockers if b.code == INDEX_RULE] == [
        f"{built.wheel.name}: the console uploaded this filename before and it has since been deleted from the "
        "index; PyPI never takes a deleted filename again: release a new version."
    ]
    with pytest.raises(ValidationError, match="PyPI never takes a deleted filename again"):
        deployment_request(release=release, environment=environment, actor=None)


def test_an_index_that_cannot_be_asked_holds_the_push_with_a_reason(db, pypi_standin: PypiStandin, tmp_path: Path):
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    release = stored_release(project, "1.0", build_package(tmp_path).paths)
    environment = pypi_environment(pypi_standin)
    pypi_standin.state.failures = [503] * 20

    blockers = deployment_blockers(release, environment, None)

    assert [b.code for b in blockers] == [INDEX_RULE]
    assert blockers[0].message.startswith("PyPI's upload rules could not be checked against Test PyPI (")
    assert not Environment.objects.filter(pk=environment.pk, pypi_rules=False).exists()


def test_a_wheel_auditwheel_cannot_repair_fails_with_its_reason(tmp_path: Path):
    # A pure-Python wheel tagged linux_x86_64: there is nothing for auditwheel to repair.
    built = build_package(tmp_path)
    mislabelled = built.wheel.with_name(built.wheel.name.replace("py3-none-any", "cp311-cp311-linux_x86_64"))
    built.wheel.rename(mislabelled)
    (tmp_path / "home").mkdir()
    ws = memory_workspace(tmp_path)

    with pytest.raises(StepFailed) as failed:
        repair_wheels(ws, [mislabelled], tmp_path / "repaired")

    assert str(failed.value).startswith(f"auditwheel could not repair {mislabelled.name}: ")
    assert "does not look like a platform wheel" in str(failed.value)
    assert str(failed.value).endswith(
        "PyPI refuses linux_ wheels: fix what auditwheel names, or collect manylinux wheels from CI; turn wheel "
        "repair off for this project only to publish to private indexes."
    )
    assert repair_wheels(ws, [built.sdist], tmp_path / "repaired") == []
