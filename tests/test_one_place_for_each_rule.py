"""Every path that writes meets the same rules, and every page offers exactly
what the services accept: the admin's forms go through the services, the
release page's buttons come from ``deployment_blockers``, the approval page's
decision from ``approval_eligibility``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from releases.models import Approval, AuditEvent, Deployment, Environment, Project, Release
from releases.services.deployments import deployment_blockers, deployment_request
from tests.support.console import EnvironmentFactory, ProjectFactory, ReleaseFactory, person_with_role
from tests.support.insider import verify_session

pytestmark = pytest.mark.django_db

BUTTON = ">Publish to Test PyPI</button>"
PROJECT_FORM = {
    "source": "https://example.org/pkg.git",
    "github_api_url": "https://api.github.com",
    "workflow_file": "publish.yml",
    "workflow_inputs": "{}",
    "tag_pattern": "v*.*.*",
    "publish_mode": "twine",
}


def admin_client() -> Client:
    client = Client()
    admin = person_with_role("admin")
    client.force_login(admin)
    # The admin site asks for a session verified with a second factor.
    return verify_session(client, admin)


def environment_form(environment: Environment, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": environment.name,
        "title": environment.title,
        "upload_url": environment.upload_url,
        "index_url": environment.index_url,
        "fallback_index_url": environment.fallback_index_url,
        "project_url_template": environment.project_url_template,
        "credential": environment.credential_id or "",
        "required_approvals": environment.required_approvals,
        "requires_success_in": environment.requires_success_in_id or "",
        "allowed_ref_pattern": environment.allowed_ref_pattern,
        "request_ttl_hours": environment.request_ttl_hours,
        "workflow_environment": environment.workflow_environment,
        "position": environment.position,
        "block_severity": environment.block_severity,
    }
    if environment.require_second_factor:
        data["require_second_factor"] = "on"
    data.update(changes)
    return data


def test_the_admin_refuses_a_name_pypi_would_normalize_and_says_how_to_write_it():
    response = admin_client().post(reverse("admin:releases_project_add"), {"name": "My_Pkg", **PROJECT_FORM})

    assert response.status_code == 200  # the form again, with the reason beside the field
    assert "Write the name as PyPI normalizes it: &#x27;my-pkg&#x27;." in response.content.decode()
    assert not Project.objects.exists()
    assert not AuditEvent.objects.filter(action="project.created").exists()


def test_the_admin_refuses_a_source_that_would_run_a_command():
    response = admin_client().post(
        reverse("admin:releases_project_add"), {"name": "pkg", **PROJECT_FORM, "source": "ext::sh -c touch%20/tmp/x"}
    )

    assert response.status_code == 200
    assert "is not a git URL or a local path" in response.content.decode()
    assert not Project.objects.exists()


def test_the_admin_refuses_a_promotion_order_that_loops_and_changes_nothing():
    first = EnvironmentFactory(name="a")
    second = EnvironmentFactory(name="b", requires_success_in=first)
    client = admin_client()
    events = AuditEvent.objects.count()

    response = client.post(
        reverse("admin:releases_environment_change", args=[first.pk]),
        environment_form(first, requires_success_in=second.pk),
    )

    assert response.status_code == 200
    assert "a cannot come after b: the order would loop." in response.content.decode()
    first.refresh_from_db()
    assert first.requires_success_in is None
    assert AuditEvent.objects.count() == events


def test_an_admin_change_goes_through_the_service_and_is_audited_with_before_and_after():
    environment = EnvironmentFactory(name="test-pypi", title="Test PyPI")

    response = admin_client().post(
        reverse("admin:releases_environment_change", args=[environment.pk]),
        # Another index address would lower its protection (a change request,
        # tests/test_four_eyes_insider.py); more approvals take effect at once.
        environment_form(environment, title="Test PyPI (staging)", required_approvals=1),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.filter(action="environment.changed").latest("id")
    assert event.data["title"] == {"before": "Test PyPI", "after": "Test PyPI (staging)"}
    assert event.data["required_approvals"] == {"before": 0, "after": 1}


def test_the_admin_deletes_no_project_or_environment():
    project = ProjectFactory()
    environment = EnvironmentFactory()
    client = admin_client()

    assert client.post(reverse("admin:releases_project_delete", args=[project.pk]), {"post": "yes"}).status_code == 403
    assert (
        client.post(reverse("admin:releases_environment_delete", args=[environment.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert Project.objects.filter(pk=project.pk).exists() and Environment.objects.filter(pk=environment.pk).exists()


def test_a_release_from_a_ref_the_environment_does_not_take_is_offered_no_button_and_a_crafted_click_is_refused():
    release = ReleaseFactory(project=ProjectFactory(name="sample-pkg"), version="1.0.0", ref="main")
    environment = EnvironmentFactory(name="test-pypi", title="Test PyPI", allowed_ref_pattern="v*")
    releaser = person_with_role("releaser")
    client = Client()
    client.force_login(releaser)

    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()

    assert BUTTON not in page
    assert "only takes releases from refs matching &#x27;v*&#x27;" in page
    response = client.post(reverse("releases:release_publish", args=["sample-pkg", "1.0.0", "test-pypi"]), follow=True)
    assert "only takes releases from refs matching" in response.content.decode()
    assert not Deployment.objects.exists()
    assert [b.code for b in deployment_blockers(release, environment, releaser)] == ["ref_pattern"]


def test_an_environment_without_a_token_says_so_before_the_button_not_after_a_failed_job():
    ReleaseFactory(project=ProjectFactory(name="sample-pkg"), version="1.0.0")
    EnvironmentFactory(name="test-pypi", title="Test PyPI", token="")
    client = Client()
    client.force_login(person_with_role("releaser"))

    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()

    assert BUTTON not in page
    assert "Test PyPI has no token: add one" in page
    client.post(reverse("releases:release_publish", args=["sample-pkg", "1.0.0", "test-pypi"]))
    assert not Deployment.objects.exists()


def test_the_button_is_offered_exactly_when_the_service_takes_the_click():
    ReleaseFactory(project=ProjectFactory(name="sample-pkg"), version="1.0.0")
    EnvironmentFactory(name="test-pypi", title="Test PyPI")
    client = Client()
    client.force_login(person_with_role("releaser"))

    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()
    assert BUTTON in page
    client.post(reverse("releases:release_publish", args=["sample-pkg", "1.0.0", "test-pypi"]))

    deployment = Deployment.objects.get()
    assert deployment.state == Deployment.State.QUEUED
    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()
    assert BUTTON not in page
    assert "A deployment is already queued." in page


def pending_push(release_state: str = "built") -> Deployment:
    """A push to an environment that needs one approval, asked for by a releaser."""
    if release_state == "built":
        release = ReleaseFactory(project=ProjectFactory(name="sample-pkg"), version="1.0.0")
    else:
        release = ReleaseFactory(
            project=ProjectFactory(name="sample-pkg"), version="1.0.0", state=Release.State.QUEUED, outcome=""
        )
    pypi = EnvironmentFactory(name="pypi", title="PyPI", required_approvals=1, require_second_factor=False)
    return deployment_request(release=release, environment=pypi, actor=person_with_role("releaser"))


def approver_client() -> Client:
    client = Client()
    client.force_login(person_with_role("approver"))
    return client


def test_an_expired_request_offers_no_decision_and_a_crafted_one_is_refused():
    pending = pending_push()
    Deployment.objects.filter(pk=pending.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    client = approver_client()

    page = client.get(reverse("releases:approval", args=[pending.pk])).content.decode()

    assert "Approve these files" not in page
    assert "This request has expired; ask for the push again." in page
    response = client.post(
        reverse("releases:approval_decide", args=[pending.pk]),
        {"decision": "approve", "digest": [a.sha256 for a in pending.release.artifacts.all()]},
    )
    assert response.status_code == 409
    assert not Approval.objects.exists()


def test_a_release_still_building_offers_no_decision():
    pending = pending_push(release_state="queued")

    page = approver_client().get(reverse("releases:approval", args=[pending.pk])).content.decode()

    assert "Approve these files" not in page
    assert "The release is still building; there are no files to approve yet." in page


def test_an_open_request_offers_the_decision_to_an_approver():
    pending = pending_push()

    page = approver_client().get(reverse("releases:approval", args=[pending.pk])).content.decode()

    assert "Approve these files" in page
