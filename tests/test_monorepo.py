"""Real repositories: a project's package in a folder of its repository,
and several projects in one repository, each with its own tag pattern."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.core.management import call_command
from django.urls import reverse

from releases.models import Job, Project, Release
from releases.services.pipeline import job_run
from releases.services.projects import environment_create, project_create
from releases.services.releases import release_create
from releases.services.webhooks import release_publish_from_tag, tag_version
from tests.support.people import make_user
from tests.support.sample import SampleRepo, git


@pytest.fixture
def monorepo(tmp_path: Path) -> tuple[SampleRepo, SampleRepo]:
    """One repository, two packages: packages/core (tags core-v*) and packages/cli (tags cli-v*)."""
    core = SampleRepo(tmp_path / "acme", "acme-core", subdirectory="packages/core")
    core.commit_version("1.0.0", tag="core-v1.0.0")
    cli = core.beside("acme-cli", "packages/cli")
    cli.commit_version("2.0.0", tag="cli-v2.0.0")
    return core, cli


@pytest.fixture
def in_process(transactional_db, monkeypatch) -> None:
    # Jobs run here, in the test's process; nothing goes to a worker.
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)


def build_here(project: Project, version: str, ref: str) -> Release:
    release = release_create(project=project, version=version, ref=ref, actor=None)
    job_run(Job.objects.get(release=release, kind=Job.Kind.BUILD).pk)
    release.refresh_from_db()
    return release


def sdist_members(release: Release) -> list[str]:
    artifact = release.artifacts.get(kind="sdist")
    with (
        storages["artifacts"].open(artifact.path, "rb") as handle,
        tarfile.open(fileobj=io.BytesIO(handle.read())) as tar,
    ):
        return tar.getnames()


def test_two_projects_of_one_repository_each_build_from_their_folder_at_their_own_tags(in_process, monorepo):
    core_repo, cli_repo = monorepo
    core = project_create(
        name="acme-core", source=str(core_repo.path), subdirectory="packages/core", tag_pattern="core-v*", actor=None
    )
    cli = project_create(
        name="acme-cli", source=str(cli_repo.path), subdirectory="packages/cli", tag_pattern="cli-v*", actor=None
    )

    core_release = build_here(core, tag_version("core-v1.0.0"), "core-v1.0.0")
    cli_release = build_here(cli, tag_version("cli-v2.0.0"), "cli-v2.0.0")

    assert core_release.is_built, core_release.reason
    assert cli_release.is_built, cli_release.reason
    assert sorted(core_release.artifacts.values_list("filename", flat=True)) == [
        "acme_core-1.0.0-py3-none-any.whl",
        "acme_core-1.0.0.tar.gz",
    ]
    assert sorted(cli_release.artifacts.values_list("filename", flat=True)) == [
        "acme_cli-2.0.0-py3-none-any.whl",
        "acme_cli-2.0.0.tar.gz",
    ]
    # Each sdist holds its own package alone, not its neighbour's.
    assert "acme_core-1.0.0/src/acme_core/__init__.py" in sdist_members(core_release)
    assert not any("acme_cli" in name for name in sdist_members(core_release))
    assert core_release.commit == git(core_repo.path, "rev-parse", "core-v1.0.0^{commit}")
    assert cli_release.commit == git(core_repo.path, "rev-parse", "cli-v2.0.0^{commit}")


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("core-v1.2.0", "1.2.0"),
        ("cli-v2.0.0rc1", "2.0.0rc1"),
        ("v1.2.0", "1.2.0"),
        ("1.2.0", "1.2.0"),
        ("core/1.4", "1.4"),
    ],
)
def test_a_monorepo_tag_names_its_version(tag, version):
    assert tag_version(tag) == version


def test_a_release_tag_starts_the_release_of_the_project_whose_pattern_it_matches(db, monorepo):
    core_repo, _ = monorepo
    environment_create(name="test-pypi", upload_url="http://127.0.0.1:9/up/", index_url="http://127.0.0.1:9/simple/",
                       token="test-upload-token", actor=None)  # fmt: skip
    core = project_create(
        name="acme-core", source=str(core_repo.path), subdirectory="packages/core", tag_pattern="core-v*", actor=None
    )

    release = release_publish_from_tag(core, "core-v1.0.0")

    assert (release.version, release.ref) == ("1.0.0", "core-v1.0.0")


@pytest.mark.parametrize("subdirectory", ["../elsewhere", "/etc", "packages//core", "packages/./core", "-rf", "a\\b"])
def test_a_subdirectory_outside_the_repository_is_refused(db, subdirectory):
    with pytest.raises(ValidationError) as refused:
        project_create(name="acme-core", source="https://example.org/acme.git", subdirectory=subdirectory, actor=None)

    assert refused.value.message_dict["subdirectory"] == [
        f"{subdirectory!r} is not a folder of the repository: write it relative to the repository's root, for "
        "example packages/core (letters, digits and . _ + -, no '..')."
    ]
    assert not Project.objects.exists()


def test_a_subdirectory_that_is_a_link_out_of_the_checkout_fails_the_build(in_process, tmp_path):
    outside = SampleRepo(tmp_path / "outside", "acme-core")
    outside.commit_version("1.0.0")
    repo = SampleRepo(tmp_path / "acme", "acme-other")
    repo.commit_version("1.0.0", tag="v1.0.0")
    os.symlink(outside.path, repo.path / "core")
    git(repo.path, "add", "core")
    git(repo.path, "commit", "--quiet", "-m", "a link")
    git(repo.path, "tag", "core-v1.0.0")
    project = project_create(name="acme-core", source=str(repo.path), subdirectory="core", actor=None)

    release = build_here(project, "1.0.0", "core-v1.0.0")

    assert release.build_failed
    assert release.reason == "core leads out of the repository; name a folder inside it."


def test_a_subdirectory_without_a_package_at_the_ref_fails_the_build(in_process, monorepo):
    core_repo, _ = monorepo
    project = project_create(name="acme-core", source=str(core_repo.path), subdirectory="packages/lib", actor=None)

    release = build_here(project, "1.0.0", "core-v1.0.0")

    assert release.build_failed
    assert "The repository has no package in packages/lib at this ref" in release.reason


def test_project_add_takes_the_subdirectory_and_the_tag_pattern(db, monorepo):
    core_repo, _ = monorepo
    out = io.StringIO()

    call_command(
        "project_add", "acme-core", "--source", str(core_repo.path), "--subdirectory", "packages/core",
        "--tag-pattern", "core-v*", stdout=out,
    )  # fmt: skip

    assert out.getvalue() == f"project acme-core added (source {core_repo.path}, in packages/core)\n"
    project = Project.objects.get(name="acme-core")
    assert (project.subdirectory, project.tag_pattern, project.repair_wheels) == ("packages/core", "core-v*", True)


def project_form(**values: str) -> dict[str, str]:
    form = {
        "name": "acme-core", "source": "https://example.org/acme.git", "tag_pattern": "core-v*",
        "github_repository": "", "workflow_file": "publish.yml", "publish_mode": "twine", "wheels_workflow": "",
        "subdirectory": "", "repair_wheels": "on",
    }  # fmt: skip
    form.update(values)
    return form


def test_the_consoles_project_form_takes_the_subdirectory_and_refuses_one_outside(db, client):
    client.force_login(make_user("root", superuser=True))

    refused = client.post(reverse("releases:project_add"), project_form(subdirectory="../other"))
    added = client.post(reverse("releases:project_add"), project_form(subdirectory="packages/core"))

    assert refused.status_code == 400
    assert "is not a folder of the repository" in refused.content.decode()
    assert added.status_code == 302
    project = Project.objects.get(name="acme-core")
    assert (project.subdirectory, project.tag_pattern, project.repair_wheels) == ("packages/core", "core-v*", True)
