"""Who may see and do what in the browser console, enforced on the server."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from releases.models import AuditEvent, Deployment, Project, Release
from tests.support.console import EnvironmentFactory, ProjectFactory, ReleaseFactory, person_with_role
from tests.support.insider import verify_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    project = ProjectFactory(name="sample-pkg")
    sandbox = EnvironmentFactory(name="test-pypi", title="Test PyPI", position=0)
    pypi = EnvironmentFactory(name="pypi", title="PyPI", required_approvals=1, position=1)
    release = ReleaseFactory(project=project, version="1.0.0")
    return {"project": project, "sandbox": sandbox, "pypi": pypi, "release": release}


def client_for(role: str | None) -> Client:
    client = Client()
    user = person_with_role(role)
    client.force_login(user)
    # The admin site asks for a session verified with a second factor.
    return verify_session(client, user) if role == "admin" else client


def pages(world) -> list[str]:
    release = world["release"]
    return [
        reverse("releases:dashboard"),
        reverse("releases:history"),
        reverse("releases:project", args=[release.project.name]),
        reverse("releases:release", args=[release.project.name, release.version]),
        reverse("releases:release_live", args=[release.project.name, release.version]),
    ]


def deploy_url(world, environment) -> str:
    release = world["release"]
    return reverse("releases:release_publish", args=[release.project.name, release.version, environment.name])


def create_url(world) -> str:
    return reverse("releases:release_create", args=[world["project"].name])


def test_anonymous_visitors_are_sent_to_sign_in(world):
    client = Client()
    for url in pages(world):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_a_signed_in_person_without_a_role_sees_nothing(world):
    client = client_for(None)
    for url in pages(world):
        assert client.get(url).status_code == 403


@pytest.mark.parametrize("role", ["viewer", "releaser", "approver", "admin"])
def test_every_role_reads_every_page(world, role):
    client = client_for(role)
    for url in pages(world):
        assert client.get(url).status_code == 200, url


def test_viewer_sees_no_publish_button_and_a_crafted_post_changes_nothing(world):
    client = client_for("viewer")
    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()
    assert "Publish to Test PyPI" not in page
    assert "Request push to PyPI" not in page
    assert "Create and build" not in client.get(reverse("releases:project", args=["sample-pkg"])).content.decode()
    events = AuditEvent.objects.count()

    assert client.post(deploy_url(world, world["sandbox"])).status_code == 403
    assert client.post(deploy_url(world, world["pypi"])).status_code == 403
    assert client.post(create_url(world), {"version": "1.0.1", "ref": "v1.0.1"}).status_code == 403

    assert not Deployment.objects.exists()
    assert not Release.objects.filter(version="1.0.1").exists()
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize("role", ["approver", "admin"])
def test_approvers_and_admins_cannot_publish_or_create_releases(world, role):
    client = client_for(role)
    assert client.post(deploy_url(world, world["sandbox"])).status_code == 403
    assert client.post(deploy_url(world, world["pypi"])).status_code == 403
    assert client.post(create_url(world), {"version": "1.0.1", "ref": "v1.0.1"}).status_code == 403
    assert not Deployment.objects.exists()
    assert not Release.objects.filter(version="1.0.1").exists()


def test_releaser_publishes_to_test_pypi_and_requests_the_push_to_pypi(world):
    client = client_for("releaser")
    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()
    assert "Publish to Test PyPI" in page
    assert "Request push to PyPI" in page

    response = client.post(deploy_url(world, world["sandbox"]))
    assert response.status_code == 302
    sandbox = Deployment.objects.get(environment=world["sandbox"])
    assert sandbox.state == Deployment.State.QUEUED
    assert sandbox.requested_by.username.startswith("releaser")

    client.post(deploy_url(world, world["pypi"]))
    pypi = Deployment.objects.get(environment=world["pypi"])
    assert pypi.state == Deployment.State.PENDING_APPROVAL


def test_releaser_creates_a_release_and_is_taken_to_its_page(world):
    client = client_for("releaser")
    response = client.post(create_url(world), {"version": "1.1.0", "ref": "v1.1.0"})
    assert response.status_code == 302
    assert response["Location"] == reverse("releases:release", args=["sample-pkg", "1.1.0"])
    release = Release.objects.get(version="1.1.0")
    assert release.created_by.username.startswith("releaser")
    assert release.jobs.filter(kind="build").count() == 1


def test_actions_refuse_get(world):
    client = client_for("releaser")
    assert client.get(deploy_url(world, world["sandbox"])).status_code == 405
    assert client.get(create_url(world)).status_code == 405
    assert not Deployment.objects.exists()


def test_a_double_click_on_publish_starts_one_deployment(world):
    client = client_for("releaser")
    first = client.post(deploy_url(world, world["sandbox"]))
    second = client.post(deploy_url(world, world["sandbox"]))
    assert first.status_code == second.status_code == 302
    assert Deployment.objects.filter(environment=world["sandbox"]).count() == 1
    assert AuditEvent.objects.filter(action="deployment.requested").count() == 1


def test_post_without_csrf_token_is_refused_and_changes_nothing(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(person_with_role("releaser"))
    assert client.post(deploy_url(world, world["sandbox"])).status_code == 403
    assert client.post(create_url(world), {"version": "1.1.0", "ref": "v1.1.0"}).status_code == 403
    assert not Deployment.objects.exists()
    assert not Release.objects.filter(version="1.1.0").exists()

    # The same request with the page's token goes through.
    client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"]))
    token = client.cookies["csrftoken"].value
    assert client.post(deploy_url(world, world["sandbox"]), {"csrfmiddlewaretoken": token}).status_code == 302
    assert Deployment.objects.count() == 1


def test_role_assign_command_gives_and_takes_roles():
    user = person_with_role(None, username="alice")
    call_command("role_assign", "alice", "admin")
    user.refresh_from_db()
    assert user.is_staff
    assert user.has_perm("releases.add_project")
    assert not user.has_perm("releases.publish_deployment")
    call_command("role_assign", "alice", "admin", "--remove")
    user = type(user).objects.get(pk=user.pk)
    assert not user.is_staff
    assert not user.has_perm("releases.add_project")
    assert list(
        AuditEvent.objects.filter(object_type="user", action__startswith="role.").values_list("action", flat=True)
    ) == [
        "role.assigned",
        "role.removed",
    ]
    with pytest.raises(CommandError, match="no user named 'bob'"):
        call_command("role_assign", "bob", "viewer")


def test_admins_add_projects_in_the_admin_and_it_is_audited(world):
    admin_client = client_for("admin")
    response = admin_client.post(
        reverse("admin:releases_project_add"),
        {
            "name": "other-pkg",
            "source": "https://example.org/other.git",
            "github_api_url": "https://api.github.com",
            "workflow_file": "publish.yml",
            "workflow_inputs": "{}",
            "tag_pattern": "v*.*.*",
            "publish_mode": "twine",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    project = Project.objects.get(name="other-pkg")
    event = AuditEvent.objects.get(action="project.created", object_id=str(project.pk))
    assert event.actor_name.startswith("admin")
    assert event.data["source"] == "https://example.org/other.git"


@pytest.mark.parametrize("role", ["viewer", "releaser", "approver"])
def test_other_roles_cannot_use_the_admin(world, role):
    client = client_for(role)
    response = client.get(reverse("admin:releases_project_add"))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    response = client.post(reverse("admin:releases_project_add"), {"name": "x", "source": "https://e.org/x.git"})
    assert response.status_code == 302
    assert not Project.objects.filter(name="x").exists()
