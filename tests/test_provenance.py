"""Provenance (PEP 740) after a push: real attestation documents (a
published sdist of pypi-attestations and the provenance PyPI serves for it,
signed through Sigstore's production instance by a GitHub workflow), served
by the PyPI stand-in's simple API and Integrity API, verified with
pypi-attestations against the Sigstore trust root it ships (no network)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from releases.models import Deployment, DeploymentFile, Project
from releases.services.deployments import shipped_summary
from releases.services.projects import project_create
from releases.services.provenance import provenance_check
from releases.steps.checks import PROVENANCE, Checks
from releases.steps.provenance import ExpectedPublisher, read_provenance
from tests.support.publishing import memory_workspace, pypi_environment, stored_release
from tests.support.pypi_standin import PypiStandin

ASSETS = Path(__file__).resolve().parent / "data" / "attestations"
SDIST = ASSETS / "pypi_attestations-0.0.19.tar.gz"
REPOSITORY = "trailofbits/pypi-attestations"
COMMIT = "08802efe1f8e5fec4ad842d6b8ce97656092ee72"
SHA256 = hashlib.sha256(SDIST.read_bytes()).hexdigest()


@pytest.fixture
def attested(pypi_standin: PypiStandin) -> PypiStandin:
    """The stand-in holds the sdist and the provenance PyPI holds for it."""
    pypi_standin.state.add_release(
        "pypi-attestations", "0.0.19", created=datetime.now(UTC), files={SDIST.name: SDIST.read_bytes()}
    )
    found = pypi_standin.state.find_file(SDIST.name)
    assert found is not None
    found[2].provenance = json.loads((ASSETS / f"{SDIST.name}.provenance").read_text())
    return pypi_standin


def read(standin: PypiStandin, tmp_path: Path, expected: ExpectedPublisher, sha256: str = SHA256):
    ws = memory_workspace(tmp_path)
    (result,) = read_provenance(
        ws,
        index_url=standin.simple_url,
        project="pypi-attestations",
        version="0.0.19",
        files=[(SDIST.name, sha256)],
        expected=expected,
        offline=True,
    )
    return result


def test_a_file_signed_by_the_projects_repository_at_the_release_commit_passes(attested, tmp_path):
    result = read(attested, tmp_path, ExpectedPublisher(REPOSITORY, COMMIT, workflow="release.yml", required=True))

    assert (result.signed, result.passed) == (True, True)
    assert (result.repository, result.workflow, result.commit) == (REPOSITORY, "release.yml", COMMIT)
    assert result.detail == f"signed by {REPOSITORY}, workflow release.yml, commit {COMMIT[:12]}"


def test_the_provenance_is_found_from_the_html_simple_api_too(attested, tmp_path):
    attested.state.html_only = True

    result = read(attested, tmp_path, ExpectedPublisher(REPOSITORY, COMMIT))

    assert result.signed and result.passed
    assert any(r.path.startswith("/integrity/pypi-attestations/0.0.19/") for r in attested.requests)


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        (ExpectedPublisher("acme/pypi-attestations", COMMIT), "repository trailofbits/pypi-attestations, not acme/pypi-attestations"),
        (ExpectedPublisher(REPOSITORY, "1" * 40), f"commit {COMMIT}, not {'1' * 40}"),
        (ExpectedPublisher(REPOSITORY, COMMIT, workflow="publish.yml"), "workflow release.yml, not publish.yml"),
    ],
    ids=["another-repository", "another-commit", "another-workflow"],
)  # fmt: skip
def test_provenance_naming_another_repository_commit_or_workflow_fails(attested, tmp_path, expected, problem):
    result = read(attested, tmp_path, expected)

    assert result.signed and not result.passed
    assert result.detail == f"signed by {REPOSITORY}, workflow release.yml, commit {COMMIT[:12]}: {problem}"


def test_an_attestation_for_other_bytes_does_not_verify(attested, tmp_path):
    other = hashlib.sha256(b"a file with the same name and other bytes").hexdigest()

    result = read(attested, tmp_path, ExpectedPublisher(REPOSITORY, COMMIT), sha256=other)

    assert (result.signed, result.passed) == (False, False)
    assert result.detail.startswith("its attestation does not verify for these bytes: ")


def test_a_file_without_provenance_is_shown_unsigned_and_fails_only_under_trusted_publishing(pypi_standin, tmp_path):
    pypi_standin.state.add_release(
        "pypi-attestations", "0.0.19", created=datetime.now(UTC), files={SDIST.name: SDIST.read_bytes()}
    )

    token = read(pypi_standin, tmp_path, ExpectedPublisher(REPOSITORY, COMMIT, required=False))
    trusted = read(pypi_standin, tmp_path, ExpectedPublisher(REPOSITORY, COMMIT, required=True))

    assert (token.signed, token.passed, token.detail) == (
        False,
        True,
        "not signed: no provenance (uploaded with an API token)",
    )
    assert (trusted.signed, trusted.passed) == (False, False)
    assert trusted.detail.startswith("no provenance: the workflow must publish with attestations")


def deployment_of(standin: PypiStandin, repository: str, *, mode: str = Project.PublishMode.TWINE) -> Deployment:
    """A deployment of the attested sdist that reached ``standin``, of a project on ``repository``."""
    project = project_create(
        name="pypi-attestations",
        source="https://github.com/trailofbits/pypi-attestations.git",
        github_repository=repository,
        workflow_file="release.yml",
        publish_mode=mode,
        actor=None,
    )
    release = stored_release(project, "0.0.19", [SDIST], commit=COMMIT)
    environment = pypi_environment(standin)
    deployment = Deployment.objects.create(release=release, environment=environment, state=Deployment.State.VERIFYING)
    for artifact in release.artifacts.all():
        DeploymentFile.objects.create(deployment=deployment, artifact=artifact, state=DeploymentFile.State.ON_INDEX)
    return deployment


def test_the_post_publication_check_records_each_files_provenance(db, attested, tmp_path):
    deployment = deployment_of(attested, REPOSITORY, mode=Project.PublishMode.WORKFLOW)
    checks = Checks()

    failed = provenance_check(memory_workspace(tmp_path), deployment, checks)

    assert failed == []
    (check,) = checks.done
    assert (check.name, check.passed) == (PROVENANCE, True)
    assert check.detail == f"1 of 1 files signed: signed by {REPOSITORY}, workflow release.yml, commit {COMMIT[:12]}"
    record = deployment.files.get()
    assert record.provenance == {
        "signed": True,
        "passed": True,
        "detail": f"signed by {REPOSITORY}, workflow release.yml, commit {COMMIT[:12]}",
        "repository": REPOSITORY,
        "workflow": "release.yml",
        "commit": COMMIT,
    }
    assert shipped_summary(deployment)["files"][SDIST.name]["provenance"]["repository"] == REPOSITORY


def test_provenance_from_another_repository_fails_the_post_publication_checks(db, attested, tmp_path):
    deployment = deployment_of(attested, "acme/pypi-attestations")
    checks = Checks()

    failed = provenance_check(memory_workspace(tmp_path), deployment, checks)

    assert failed == [
        f"provenance: {SDIST.name}: signed by {REPOSITORY}, workflow release.yml, commit {COMMIT[:12]}: "
        f"repository {REPOSITORY}, not acme/pypi-attestations."
    ]
    assert [(c.name, c.passed) for c in checks.done] == [(PROVENANCE, False)]
    assert deployment.files.get().provenance["passed"] is False
