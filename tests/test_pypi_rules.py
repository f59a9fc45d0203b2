"""PyPI's upload rules, one test each: real packages built with uv, uploaded
with real twine to the PyPI stand-in, which answers with warehouse's status
and message; and ``pypi_rules``, run beforehand on the same files and on what
the index's JSON and simple APIs say, finds the same refusal."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from releases.clients import index
from releases.steps import pypi_rules
from releases.steps.distfiles import read_dist
from releases.steps.pypi_index_view import read_index
from releases.steps.pypi_rules import PYPI_LIMITS, Limits, Rule, Violation
from tests.support.pypi_packages import Built, build_package, rewrite_wheel_metadata, twine_upload
from tests.support.pypi_standin import PypiStandin
from tests.support.pypi_state import ONE_GIB, ONE_MIB

ACCOUNT = "alice"


def predict(
    standin: PypiStandin,
    paths: list[Path],
    *,
    account: str | None = ACCOUNT,
    previously_uploaded: tuple[str, ...] = (),
    limits: Limits = PYPI_LIMITS,
) -> list[Violation]:
    """pypi_rules as the console runs it before an upload: what the index's
    simple and JSON APIs say, then the rules on the local files."""
    name = str(read_dist(paths[0]).metadata["name"])  # type: ignore[index]
    view = read_index(standin.simple_url, name)
    # The stand-in answers on loopback; its messages point where PyPI's do.
    view = dataclasses.replace(view, site=standin.state.site)
    return pypi_rules.check_paths(
        paths, view, account=account, now=datetime.now(UTC), previously_uploaded=previously_uploaded, limits=limits
    )


def assert_refused_as_predicted(standin: PypiStandin, run, predicted: Violation, status: int, message: str) -> None:
    """The stand-in answered the last upload ``status message``, twine said
    so, and pypi_rules had predicted exactly that answer."""
    assert not standin.errors
    last = standin.uploads[-1]
    assert (last.status, last.reason) == (status, message)
    assert run.returncode == 1
    assert " ".join(message.split()) in run.output
    assert (predicted.pypi_status, predicted.pypi_message) == (status, message)


def rules(violations: list[Violation]) -> list[tuple[Rule, str | None]]:
    return [(v.rule, v.filename) for v in violations]


@pytest.fixture
def token(pypi_standin: PypiStandin) -> str:
    return pypi_standin.state.token_for(ACCOUNT)


@pytest.fixture
def built(tmp_path: Path) -> Built:
    return build_package(tmp_path)


def test_a_clean_release_is_predicted_clean_and_accepted(pypi_standin, token, built):
    assert predict(pypi_standin, built.paths) == []

    run = twine_upload(pypi_standin.upload_url, token, *built.paths)

    assert run.returncode == 0, run.output
    # One twine call sends the wheels first, whatever order it is given.
    assert [(r.filename, r.status) for r in pypi_standin.uploads] == [(built.wheel.name, 200), (built.sdist.name, 200)]
    listed = index.list_files(pypi_standin.simple_url, "sample-pkg")
    assert sorted(listed) == sorted(p.name for p in built.paths)


def test_wheel_of_a_c_extension_tagged_linux_x86_64_is_refused(pypi_standin, token, tmp_path):
    built = build_package(tmp_path, extension=True)
    assert built.wheel.name == "sample_pkg-1.0-cp311-cp311-linux_x86_64.whl"
    predicted = predict(pypi_standin, built.paths)
    assert rules(predicted) == [(Rule.PLATFORM_TAG, built.wheel.name)]
    assert predicted[0].message == (
        "sample_pkg-1.0-cp311-cp311-linux_x86_64.whl: PyPI refuses the platform tag linux_x86_64; repair the wheel "
        "with auditwheel (auditwheel repair) or build manylinux wheels on CI (cibuildwheel)."
    )

    run = twine_upload(pypi_standin.upload_url, token, *built.paths)

    message = f"Binary wheel '{built.wheel.name}' has an unsupported platform tag 'linux_x86_64'."
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)
    # twine sent the wheel first and stopped there; sent alone (a retry, a
    # second call), the sdist would be live while the wheel never can be.
    assert [(r.filename, r.status) for r in pypi_standin.uploads] == [(built.wheel.name, 400)]
    assert twine_upload(pypi_standin.upload_url, token, built.sdist).returncode == 0
    assert list(index.list_files(pypi_standin.simple_url, "sample-pkg")) == [built.sdist.name]


def test_a_second_sdist_for_a_release_is_refused(pypi_standin, token, built):
    # An sdist of the old shape, uploaded before PEP 625 made .tar.gz the only one.
    pypi_standin.state.add_release(
        "sample-pkg", "1.0", created=datetime.now(UTC), files={"sample-pkg-1.0.zip": b"old"}, owners=[ACCOUNT]
    )
    predicted = predict(pypi_standin, [built.sdist])
    assert rules(predicted) == [(Rule.ONE_SDIST, built.sdist.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.sdist)

    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, "Only one sdist may be uploaded per release.")


def test_a_filename_already_used_with_other_bytes_is_refused(pypi_standin, token, built, tmp_path):
    twine_upload(pypi_standin.upload_url, token, built.sdist)
    rebuilt = build_package(tmp_path / "again", summary="The same version, built again from other code.")
    assert rebuilt.sdist.name == built.sdist.name
    predicted = predict(pypi_standin, [rebuilt.sdist])
    assert rules(predicted) == [(Rule.FILE_EXISTS, built.sdist.name)]

    run = twine_upload(pypi_standin.upload_url, token, rebuilt.sdist)

    blake2 = read_dist(rebuilt.sdist).blake2b_256
    message = (
        f"File already exists ('{built.sdist.name}', with blake2_256 hash '{blake2}'). "
        "See https://pypi.org/help/#file-name-reuse for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_the_same_bytes_again_are_answered_200_and_not_stored_twice(pypi_standin, token, built):
    twine_upload(pypi_standin.upload_url, token, *built.paths)
    # Nothing to say: the upload step skips files the index has with the same sha256.
    assert predict(pypi_standin, built.paths) == []

    run = twine_upload(pypi_standin.upload_url, token, *built.paths)

    assert run.returncode == 0, run.output
    assert [r.status for r in pypi_standin.uploads] == [200, 200, 200, 200]
    files = pypi_standin.state.projects["sample-pkg"].releases["1"].files
    assert sorted(f.filename for f in files) == sorted(p.name for p in built.paths)


def test_a_filename_once_used_by_a_deleted_file_is_refused(pypi_standin, token, built):
    twine_upload(pypi_standin.upload_url, token, built.wheel)
    pypi_standin.state.delete_file(built.wheel.name)
    # The index no longer lists it; only the console's own record of the upload tells.
    assert predict(pypi_standin, [built.wheel]) == []
    predicted = predict(pypi_standin, [built.wheel], previously_uploaded=(built.wheel.name,))
    assert rules(predicted) == [(Rule.FILENAME_REUSED, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = (
        "This filename was previously used by a file that has since been deleted. Use a different version. "
        "See https://pypi.org/help/#file-name-reuse for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_new_files_for_a_release_older_than_14_days_are_refused(pypi_standin, token, built):
    published = datetime.now(UTC) - timedelta(days=15)
    pypi_standin.state.add_release(
        "sample-pkg", "1.0", created=published, files={built.sdist.name: built.sdist.read_bytes()}, owners=[ACCOUNT]
    )
    predicted = predict(pypi_standin, built.paths)
    # The sdist is there already (skipped); the wheel would be new.
    assert rules(predicted) == [(Rule.RELEASE_CLOSED, built.wheel.name)]
    assert f"first published on {published:%Y-%m-%d}" in predicted[0].message

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = "Uploading new files to releases older than 14 days is not allowed."
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_file_over_the_size_limit_is_refused(pypi_standin, token, tmp_path):
    pypi_standin.state.max_file_size = ONE_MIB  # PyPI's is 100 MiB; a smaller one keeps the test quick
    built = build_package(tmp_path, data_bytes=ONE_MIB + ONE_MIB // 2)
    predicted = predict(pypi_standin, [built.wheel], limits=Limits(file_size=ONE_MIB))
    assert rules(predicted) == [(Rule.FILE_SIZE, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = (
        "File too large. Limit for project 'sample-pkg' is 1 MB. See "
        "https://docs.pypi.org/project-management/storage-limits#requesting-a-file-size-limit-increase "
        "for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_file_that_would_take_the_project_over_its_size_limit_is_refused(pypi_standin, token, built):
    old = pypi_standin.state.add_release(
        "sample-pkg", "0.9", created=datetime.now(UTC), files={"sample_pkg-0.9.tar.gz": b"old"}, owners=[ACCOUNT]
    )
    old.files[0].counted_size = 10 * ONE_GIB - 1000  # the project is nearly at PyPI's 10 GiB
    predicted = predict(pypi_standin, [built.wheel])
    assert rules(predicted) == [(Rule.PROJECT_SIZE, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = (
        "Project size too large. Limit for project 'sample-pkg' total size is 10 GB. See "
        "https://docs.pypi.org/project-management/storage-limits#requesting-a-project-size-limit-increase"
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_metadata_version_newer_than_pypi_knows_is_refused(pypi_standin, token, built):
    # packaging (and so twine) reads Metadata-Version 2.6; warehouse takes up to 2.5.
    rewrite_wheel_metadata(built.wheel, lambda text: text.replace("Metadata-Version: 2.4", "Metadata-Version: 2.6"))
    predicted = predict(pypi_standin, [built.wheel])
    assert rules(predicted) == [(Rule.METADATA, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = "'2.6' is not a valid metadata version. See https://packaging.python.org/specifications/core-metadata for more information."
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_metadata_without_a_required_field_is_stopped_by_twine_before_a_byte_is_sent(pypi_standin, token, built):
    rewrite_wheel_metadata(built.wheel, lambda text: text.replace("Version: 1.0\n", "", 1))
    predicted = predict(pypi_standin, [built.wheel])
    assert rules(predicted) == [(Rule.METADATA, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    assert run.returncode == 1
    assert "Invalid distribution metadata: 'version' is a required field" in run.output
    assert pypi_standin.upload_bytes_received == 0
    # What PyPI says to a client that sends it anyway: the form twine would have sent.
    fields = {":action": "file_upload", "protocol_version": "1", "metadata_version": "2.4", "name": "sample-pkg"}
    fields |= {"filetype": "bdist_wheel", "pyversion": "py3", "sha256_digest": read_dist(built.wheel).sha256}
    answer = requests.post(
        pypi_standin.upload_url,
        data=fields,
        files={"content": (built.wheel.name, built.wheel.read_bytes(), "application/octet-stream")},
        auth=("__token__", token),
        timeout=30,
    )
    message = "'version' is a required field. See https://packaging.python.org/specifications/core-metadata for more information."
    assert (answer.status_code, answer.reason) == (400, message)
    assert (predicted[0].pypi_status, predicted[0].pypi_message) == (400, message)


def test_a_local_version_is_refused(pypi_standin, token, tmp_path):
    built = build_package(tmp_path, version="1.0+local")
    predicted = predict(pypi_standin, [built.wheel])
    assert rules(predicted) == [(Rule.METADATA, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = (
        "The use of local versions in '1.0+local' is not allowed. See "
        "https://packaging.python.org/en/latest/specifications/version-specifiers/#local-version-identifiers "
        "for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_summary_longer_than_512_characters_is_refused(pypi_standin, token, tmp_path):
    built = build_package(tmp_path, summary="A package. " * 50)
    predicted = predict(pypi_standin, [built.sdist])
    assert rules(predicted) == [(Rule.METADATA, built.sdist.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.sdist)

    message = "'summary' field must be 512 characters or less. See https://packaging.python.org/specifications/core-metadata for more information."
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_readme_that_does_not_render_is_refused(pypi_standin, token, tmp_path):
    # The underline is shorter than the title: docutils warns, and PyPI renders nothing.
    built = build_package(tmp_path, readme="A long title\n=====\n\nText.\n", readme_type="text/x-rst")
    predicted = predict(pypi_standin, [built.sdist])
    assert rules(predicted) == [(Rule.DESCRIPTION, built.sdist.name)]
    assert "Title underline too short" in predicted[0].message

    run = twine_upload(pypi_standin.upload_url, token, built.sdist)

    message = (
        "The description failed to render for 'text/x-rst'. "
        "See https://pypi.org/help/#description-content-type for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_an_invalid_classifier_is_refused(pypi_standin, token, tmp_path):
    built = build_package(tmp_path, classifiers=("Programming Language :: Cobol :: 85",))
    predicted = predict(pypi_standin, [built.wheel])
    assert rules(predicted) == [(Rule.METADATA, built.wheel.name)]
    assert "https://pypi.org/classifiers/" in predicted[0].message

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = (
        "'Programming Language :: Cobol :: 85' is not a valid classifier. "
        "See https://packaging.python.org/specifications/core-metadata for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_deprecated_classifier_is_refused_with_its_replacement(pypi_standin, token, tmp_path):
    built = build_package(tmp_path, classifiers=("Natural Language :: Ukranian",))
    predicted = predict(pypi_standin, [built.wheel])
    assert rules(predicted) == [(Rule.METADATA, built.wheel.name)]

    run = twine_upload(pypi_standin.upload_url, token, built.wheel)

    message = (
        "The classifier 'Natural Language :: Ukranian' has been deprecated, use one of "
        "['Natural Language :: Ukrainian'] instead. See https://packaging.python.org/specifications/core-metadata "
        "for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_project_owned_by_another_account_is_refused_403(pypi_standin, token, built):
    pypi_standin.state.add_release(
        "sample-pkg", "0.1", created=datetime.now(UTC), files={"sample_pkg-0.1.tar.gz": b"bob's"}, owners=["bob"]
    )
    predicted = predict(pypi_standin, built.paths)
    assert rules(predicted) == [(Rule.PROJECT_OWNER, None)]
    assert "(bob), not 'alice'" in predicted[0].message
    # Without the credential's account name, the console cannot tell.
    assert predict(pypi_standin, built.paths, account=None) == []

    run = twine_upload(pypi_standin.upload_url, token, *built.paths)

    message = (
        "The user 'alice' isn't allowed to upload to project 'sample-pkg'. "
        "See https://pypi.org/help/#project-name for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 403, message)


def test_a_new_name_too_similar_to_an_existing_project_is_refused(pypi_standin, token, built):
    # 'sampie-pkg' and 'sample-pkg' are one name once i and l both read as 1.
    pypi_standin.state.add_release("sampie-pkg", "1.0", created=datetime.now(UTC), owners=["bob"])
    predicted = predict(pypi_standin, built.paths)
    assert rules(predicted) == [(Rule.PROJECT_NAME, None)]
    assert "'sampie-pkg'" in predicted[0].message

    run = twine_upload(pypi_standin.upload_url, token, *built.paths)

    message = (
        "The name 'sample-pkg' is too similar to an existing project. "
        "See https://pypi.org/help/#project-name for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


def test_a_new_project_named_like_a_standard_library_module_is_refused(pypi_standin, token, tmp_path):
    built = build_package(tmp_path, name="asyncio")
    predicted = predict(pypi_standin, [built.sdist])
    assert rules(predicted) == [(Rule.PROJECT_NAME, None)]

    run = twine_upload(pypi_standin.upload_url, token, built.sdist)

    message = (
        "The name 'asyncio' isn't allowed (conflict with Python Standard Library module name). "
        "See https://pypi.org/help/#project-name for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 400, message)


@pytest.mark.parametrize(
    ("username", "password"),
    [("__token__", "not-a-pypi-token"), ("alice", "pypi-AgEIcHlwaS5vcmc"), ("__token__", "")],
    ids=["not-a-token", "username-not-token", "no-token"],
)
def test_a_missing_or_malformed_token_is_refused_403(pypi_standin, built, username, password):
    predicted = pypi_rules.check_credential(username, password, site=pypi_standin.state.site)
    assert [v.rule for v in predicted] == [Rule.CREDENTIAL]
    assert password not in predicted[0].message or not password

    run = twine_upload(pypi_standin.upload_url, password, built.sdist, username=username)

    message = (
        "Invalid or non-existent authentication information. "
        "See https://pypi.org/help/#invalid-auth for more information."
    )
    assert_refused_as_predicted(pypi_standin, run, predicted[0], 403, message)


def test_a_well_formed_but_unknown_token_is_known_only_when_pypi_answers(pypi_standin, built):
    assert pypi_rules.check_credential("__token__", "pypi-" + "A" * 60) == []

    run = twine_upload(pypi_standin.upload_url, "pypi-" + "A" * 60, built.sdist)

    assert run.returncode == 1
    assert pypi_standin.uploads[-1].status == 403
