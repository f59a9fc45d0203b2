"""The simple-API client on pypi-simple, against devpi-server and the PyPI
stand-in (PEP 691 JSON and PEP 503 HTML): the same answers as the client it
replaces, plus yanked, core metadata and provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from releases.clients import http, index, pypi_json
from releases.errors import StepFailed, TransientError
from releases.steps.pypi_index_view import read_index
from tests.support.devpi import DevpiServer, IndexAccount
from tests.support.pypi_packages import Built, build_package, twine_upload
from tests.support.pypi_standin import PypiStandin

QUICK = http.RetryPolicy(attempts=3, backoff=0.01, max_wait=0.01)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_package(tmp_path_factory.mktemp("index-client"))


@pytest.fixture
def published(pypi_standin: PypiStandin, built: Built) -> PypiStandin:
    """sample-pkg 1.0 on the stand-in, uploaded with twine: the wheel has core
    metadata; the release is yanked, and the sdist has a provenance."""
    token = pypi_standin.state.token_for("alice")
    assert twine_upload(pypi_standin.upload_url, token, *built.paths).returncode == 0
    pypi_standin.state.yank("sample-pkg", "1.0", reason="broken import")
    found = pypi_standin.state.find_file(built.sdist.name)
    assert found is not None
    found[2].provenance = {"version": 1, "attestation_bundles": []}
    return pypi_standin


def test_devpi_project_never_uploaded_lists_nothing(index_account: IndexAccount):
    assert index.list_files(index_account.simple_url, "never-uploaded") == {}
    assert index.fetch_project(index_account.simple_url, "never-uploaded") is None


def test_devpi_files_come_with_their_sha256_and_addresses(
    devpi: DevpiServer, index_account: IndexAccount, built: Built
):
    for path in built.paths:
        devpi.upload_raw(index_account, path)

    files = index.list_files(index_account.simple_url, "Sample_Pkg")

    assert {name: f.sha256 for name, f in files.items()} == {p.name: sha256(p) for p in built.paths}
    for name, listed in files.items():
        assert listed.url.startswith(devpi.url) and listed.url.endswith("/" + name)
    assert not any(f.yanked for f in files.values())


def test_standin_json_gives_yanked_core_metadata_and_provenance(published: PypiStandin, built: Built):
    project = index.fetch_project(published.simple_url, "sample-pkg")

    assert project is not None
    wheel, sdist = project.files[built.wheel.name], project.files[built.sdist.name]
    assert (wheel.sha256, sdist.sha256) == (sha256(built.wheel), sha256(built.sdist))
    assert (wheel.yanked, wheel.yanked_reason) == (True, "broken import")
    assert (wheel.has_core_metadata, sdist.has_core_metadata) == (True, False)
    assert wheel.provenance_url is None
    assert sdist.provenance_url == (f"{published.url}/integrity/sample-pkg/1.0/{built.sdist.name}/provenance")
    assert published.requests[-1].accept.startswith("application/vnd.pypi.simple.v1+json")


def test_standin_html_gives_the_same_files_as_json(published: PypiStandin, built: Built):
    from_json = index.list_files(published.simple_url, "sample-pkg")
    published.state.html_only = True

    from_html = index.list_files(published.simple_url, "sample-pkg")

    assert from_html == from_json


def test_a_project_without_files_exists_on_the_simple_api_but_not_on_the_json_api(pypi_standin: PypiStandin):
    pypi_standin.state.add_project("emptied", owners=["bob"])

    project = index.fetch_project(pypi_standin.simple_url, "emptied")

    assert project is not None
    assert project.files == {}
    assert pypi_json.fetch_project(pypi_standin.json_url, "emptied") is None


def test_transient_errors_are_asked_again(pypi_standin: PypiStandin, published: PypiStandin, built: Built):
    pypi_standin.state.failures = [503, 429]

    project = index.fetch_project(pypi_standin.simple_url, "sample-pkg", policy=QUICK)

    assert project is not None
    assert sorted(project.files) == sorted(p.name for p in built.paths)
    assert [r.status for r in pypi_standin.requests[-3:]] == [503, 429, 200]


def test_transient_errors_past_the_attempts_end_in_transient_error(pypi_standin: PypiStandin):
    pypi_standin.state.failures = [503, 503, 503]

    with pytest.raises(TransientError, match="answered 503"):
        index.fetch_project(pypi_standin.simple_url, "sample-pkg", policy=QUICK)


def test_a_refusal_is_a_step_failure_with_a_sentence(pypi_standin: PypiStandin):
    pypi_standin.state.failures = [403]

    with pytest.raises(StepFailed, match=r"The index answered 403 for .*/simple/sample-pkg/; check the environment"):
        index.fetch_project(pypi_standin.simple_url, "sample-pkg", policy=QUICK)


def test_a_page_that_is_not_a_simple_api_is_a_step_failure(pypi_standin: PypiStandin, published: PypiStandin):
    # The JSON API where the simple API was meant: a common misconfiguration.
    with pytest.raises(StepFailed, match="neither the simple API's JSON"):
        index.fetch_project(pypi_standin.url + "/pypi/sample-pkg/", "json")


def test_project_names_lists_every_project_on_the_index(pypi_standin: PypiStandin):
    for name in ("Alpha", "beta.two"):
        pypi_standin.state.add_project(name, owners=["bob"])

    assert index.project_names(pypi_standin.simple_url) == {"Alpha", "beta.two"}


def test_json_api_gives_files_upload_times_and_roles(published: PypiStandin, built: Built):
    project = pypi_json.fetch_project(published.json_url, "Sample_Pkg")

    assert project is not None
    release = project.release("1.0.0")
    assert release is not None and release.yanked
    assert sorted(f.filename for f in release.files) == sorted(p.name for p in built.paths)
    assert release.first_upload is not None and release.first_upload.tzinfo is not None
    assert project.may_upload("alice") is True
    assert project.may_upload("mallory") is False
    assert project.total_size == sum(p.stat().st_size for p in built.paths)
    assert pypi_json.json_api_url(published.simple_url) == published.json_url


def test_read_index_on_devpi_knows_the_project_exists_but_has_no_json_api(
    devpi: DevpiServer, index_account: IndexAccount, built: Built
):
    devpi.upload_raw(index_account, built.sdist)

    view = read_index(index_account.simple_url, "sample-pkg")

    assert pypi_json.json_api_url(index_account.simple_url) is None
    assert (view.project, view.project_exists, view.known_names) == (None, True, None)
