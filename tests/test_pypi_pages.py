"""PyPI's rules on the pages: each broken rule one line on the release page
in place of the button, the approval page without "Approve" while any
stands, and the approval page saying which bytes go and how."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from releases.models import Approval, Deployment, Environment, Project
from releases.services.approvals import ApprovalRefused, approval_give, artifact_digests
from releases.services.deployments import INDEX_RULE, deployment_blockers, deployment_request
from releases.services.projects import project_create, project_set_github
from tests.support.insider import verify_session
from tests.support.people import make_user
from tests.support.publishing import pypi_environment, stored_release
from tests.support.pypi_packages import build_package, twine_upload
from tests.support.pypi_standin import PypiStandin


@pytest.fixture(autouse=True)
def _rules_asked_afresh(settings) -> None:
    # The pages keep the index's answer for a minute; these tests change the index in between.
    settings.INDEX_RULES_CACHE_SECONDS = 0


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_release_page_shows_each_broken_rule_in_place_of_the_button(db, pypi_standin: PypiStandin, tmp_path: Path):
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    # A README PyPI does not render (the underline is too short), and a linux_ wheel.
    built = build_package(tmp_path, extension=True, readme="A long title\n=====\n\nText.\n", readme_type="text/x-rst")
    release = stored_release(project, "1.0", built.paths)
    environment = pypi_environment(pypi_standin)
    lines = [b.message for b in deployment_blockers(release, environment, None) if b.code == INDEX_RULE]
    assert len(lines) == 3  # the README in each file, and the wheel's platform tag
    assert any("PyPI refuses the platform tag linux_x86_64" in line for line in lines)
    assert sum("does not render on PyPI" in line for line in lines) == 2

    page = signed_in(make_user("rita", "releaser")).get(
        reverse("releases:release", args=[project.name, release.version])
    )

    text = page.content.decode()
    shown = re.findall(r'<p class="muted small blocker">(.*?)</p>', text, re.S)
    assert [html.unescape(line) for line in shown] == lines
    assert reverse("releases:release_publish", args=[project.name, release.version, environment.name]) not in text


def pending_push(standin: PypiStandin, tmp_path: Path, project: Project) -> Deployment:
    built = build_package(tmp_path, "sample-pkg", "1.0.0")
    release = stored_release(project, "1.0.0", built.paths)
    pypi = pypi_environment(standin, "pypi", "PyPI", required_approvals=1)
    return deployment_request(release=release, environment=pypi, actor=make_user("rita", "releaser"))


def test_approve_is_not_offered_while_a_rule_stands_and_a_click_is_refused(db, pypi_standin, tmp_path):
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    push = pending_push(pypi_standin, tmp_path, project)
    approver = make_user("alice", approver=True)
    client = signed_in(approver)
    url = reverse("releases:approval", args=[push.pk])
    assert "Approve these files" in client.get(url).content.decode()
    # Someone puts other bytes under the release's sdist name meanwhile.
    other = build_package(tmp_path / "other", "sample-pkg", "1.0.0", summary="Built elsewhere.")
    assert twine_upload(pypi_standin.upload_url, pypi_standin.state.token_for("alice"), other.sdist).returncode == 0

    html = client.get(url).content.decode()

    assert "Approve these files" not in html
    assert 'value="reject"' in html
    assert "PyPI would refuse these files; they cannot be approved:" in html
    assert "sample_pkg-1.0.0.tar.gz: the index already has a different file of this name" in html
    with pytest.raises(ApprovalRefused, match="the index already has a different file of this name"):
        approval_give(
            push, approver, Approval.Decision.APPROVE, digests_seen=artifact_digests(push), second_factor_verified=True
        )
    assert not Approval.objects.filter(deployment=push).exists()
    # A rejection stays open.
    approval_give(
        push, approver, Approval.Decision.REJECT, digests_seen=artifact_digests(push), second_factor_verified=True
    )
    push.refresh_from_db()
    assert push.outcome == Deployment.Outcome.REJECTED


def test_the_approval_page_says_these_bytes_go_via_trusted_publishing_from_the_repositorys_workflow(
    db, pypi_standin, tmp_path
):
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    project = project_set_github(
        project, repository="acme/sample-pkg", publish_mode=Project.PublishMode.WORKFLOW, actor=None
    )
    push = pending_push(pypi_standin, tmp_path, project)

    html = (
        signed_in(make_user("alice", approver=True)).get(reverse("releases:approval", args=[push.pk])).content.decode()
    )

    assert "These bytes, via Trusted Publishing from acme/sample-pkg's publish.yml" in html


def test_the_approval_page_says_these_bytes_go_from_the_consoles_workers(db, pypi_standin, tmp_path):
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    push = pending_push(pypi_standin, tmp_path, project)

    html = (
        signed_in(make_user("alice", approver=True)).get(reverse("releases:approval", args=[push.pk])).content.decode()
    )

    assert f"These bytes, uploaded by the console's workers to {pypi_standin.simple_url}" in html


@pytest.mark.parametrize(
    ("upload_url", "index_url", "rules"),
    [
        ("https://upload.pypi.org/legacy/", "https://pypi.org/simple/", True),
        ("https://test.pypi.org/legacy/", "https://test.pypi.org/simple/", True),
        ("https://devpi.example.org/acme/dev/", "https://devpi.example.org/acme/dev/+simple/", False),
    ],
)
def test_an_environment_added_in_the_admin_has_pypis_rules_by_its_address(db, upload_url, index_url, rules):
    root = make_user("root", superuser=True)
    response = verify_session(signed_in(root), root).post(
        reverse("admin:releases_environment_add"),
        {
            "name": "target", "title": "Target", "upload_url": upload_url, "index_url": index_url,
            "required_approvals": 0, "request_ttl_hours": 168, "position": 0, "block_severity": "none",
            "fallback_index_url": "", "project_url_template": "", "allowed_ref_pattern": "",
            "workflow_environment": "", "index_account": "",
        },
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Environment.objects.get(name="target").pypi_rules is rules
