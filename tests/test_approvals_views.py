"""The approval, second-factor and audit pages through Django's test client.

No upload can happen here (the transaction is never committed, so no task
is sent); the matrix with a worker and devpi is test_approvals_matrix.py.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.models import Approval, AuditEvent, Deployment, DeploymentFile, Environment, Project, Release
from releases.services.deployments import deployment_request
from releases.services.lifecycle import transition
from releases.services.projects import environment_create
from tests.support.console import DeploymentFactory, ProjectFactory, ReleaseFactory
from tests.support.insider import verify_session
from tests.support.people import make_user

PASSWORD = "correct horse battery staple"


def wheel_bytes(version: str, requires: list[str]) -> bytes:
    metadata = f"Metadata-Version: 2.1\nName: sample-pkg\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sample_pkg/__init__.py", f'__version__ = "{version}"\n')
        archive.writestr(f"sample_pkg-{version}.dist-info/METADATA", metadata)
    return buffer.getvalue()


def built_release(project: Project, version: str, requires: list[str]) -> Release:
    """A release as the build job leaves it: built, its files stored with their digests."""
    return ReleaseFactory(
        project=project,
        version=version,
        commit="a" * 40,
        files={
            f"sample_pkg-{version}.tar.gz": f"sdist {version}".encode(),
            f"sample_pkg-{version}-py3-none-any.whl": wheel_bytes(version, requires),
        },
    )


@pytest.fixture
def environments(db) -> tuple[Environment, Environment]:
    test_pypi = environment_create(
        name="test-pypi",
        title="Test PyPI",
        upload_url="http://127.0.0.1:9/a/",
        index_url="http://127.0.0.1:9/a/+simple/",
        token="test-upload-token-a",
        actor=None,
    )
    pypi = environment_create(
        name="pypi",
        title="PyPI",
        upload_url="http://127.0.0.1:9/b/",
        index_url="http://127.0.0.1:9/b/+simple/",
        required_approvals=1,
        after="test-pypi",
        token="test-upload-token-b",
        actor=None,
    )
    return test_pypi, pypi


@pytest.fixture
def people(db):
    return {
        "releaser": make_user("rita", "releaser", approver=True),
        "approver": make_user("alice", approver=True),
        "outsider": make_user("oscar"),
        "admin": make_user("root", superuser=True),
    }


@pytest.fixture
def pending(environments, people) -> Deployment:
    test_pypi, pypi = environments
    project = ProjectFactory(name="sample-pkg", source="/nowhere")
    built_release(project, "1.0.0", ["requests>=2", "click"])
    release = built_release(project, "1.1.0", ["requests>=2.31", "rich"])
    verified = DeploymentFactory(release=release, environment=test_pypi)
    for record in verified.files.select_related("artifact"):
        record = transition(
            record,
            DeploymentFile.State.ON_INDEX,
            outcome=DeploymentFile.Outcome.UPLOADED,
            changes={"index_sha256": record.artifact.sha256},
        )
        transition(record, DeploymentFile.State.VERIFIED)
    return deployment_request(release=release, environment=pypi, actor=people["releaser"])


def client_for(user, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def verified_client(user) -> Client:
    """A signed-in client that enrolled an authenticator through the pages."""
    client = client_for(user)
    page = client.get(reverse("releases:second_factor"))
    assert page.status_code == 200
    assert b"<svg" in page.content
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    # The key typed by hand is the one in the QR code's otpauth:// URL.
    secret = re.search(r"secret=([A-Z2-7]+)", device.config_url)
    assert secret is not None and secret.group(1) in page.content.decode()
    token = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    codes = client.post(reverse("releases:second_factor_confirm"), {"token": f"{token:06d}"})
    assert codes.status_code == 200
    assert len(re.findall(r"<li><code>\w+</code></li>", codes.content.decode())) == 10
    return client


def decide_data(deployment: Deployment, decision: str = "approve", **extra: object) -> dict[str, object]:
    digests = sorted(deployment.release.artifacts.values_list("sha256", flat=True))
    return {"decision": decision, "digest": digests, "comment": "", **extra}


def test_the_approval_page_shows_files_verification_and_changes(pending, people):
    page = client_for(people["approver"]).get(reverse("releases:approval", args=[pending.pk]))

    assert page.status_code == 200
    html = page.content.decode()
    for artifact in pending.release.artifacts.all():
        assert artifact.filename in html
        assert f"{artifact.size} bytes" in html
        assert artifact.sha256 in html
    assert "Installed and checked on Test PyPI" in html
    assert "Compared with 1.0.0" in html
    assert "<td>click</td><td>click</td><td>—</td>" in html
    assert "<td>requests</td><td>requests&gt;=2</td><td>requests&gt;=2.31</td>" in html
    assert "<td>rich</td><td>—</td><td>rich</td>" in html
    # pypi requires a second factor: no decision form until the session is verified.
    assert "Set up a second factor" in html
    assert 'name="decision"' not in html


def test_an_approver_with_a_verified_session_approves_from_the_page(pending, people):
    client = verified_client(people["approver"])
    html = client.get(reverse("releases:approval", args=[pending.pk])).content.decode()
    assert 'value="approve"' in html
    # The digests shown are posted back with the decision.
    for artifact in pending.release.artifacts.all():
        assert f'<input type="hidden" name="digest" value="{artifact.sha256}">' in html

    response = client.post(
        reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending, comment="Looks right.")
    )

    assert response.status_code == 302
    approval = Approval.objects.get(deployment=pending)
    assert approval.approver == people["approver"] and approval.second_factor and approval.comment == "Looks right."
    pending.refresh_from_db()
    assert pending.state == Deployment.State.QUEUED
    assert AuditEvent.objects.filter(action="second_factor.enrolled", actor_name="alice").exists()


def test_the_awaiting_list_shows_requests_for_others_only(pending, people):
    mine = client_for(people["approver"]).get(reverse("releases:approvals")).content.decode()
    assert str(pending.release) in mine.split("Awaiting my approval")[1]
    # The requester finds the request under "My requests", with a way to cancel it, and not as one to approve.
    own = client_for(people["releaser"]).get(reverse("releases:approvals")).content.decode()
    requests, awaiting = own.split("Awaiting my approval")
    assert f"Push #{pending.pk}: {pending.release}" in requests and "Cancel request" in requests
    assert str(pending.release) not in awaiting
    outsider = client_for(people["outsider"]).get(reverse("releases:approvals"))
    assert "do not have the permission" in outsider.content.decode()


def test_a_decision_by_get_is_not_allowed(pending, people):
    response = client_for(people["approver"]).get(reverse("releases:approval_decide", args=[pending.pk]))
    assert response.status_code == 405


def test_a_decision_without_the_csrf_token_is_forbidden(pending, people):
    client = client_for(people["approver"], csrf=True)
    response = client.post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending))
    assert response.status_code == 403
    assert not Approval.objects.exists()


def test_a_crafted_post_by_someone_without_the_permission_is_forbidden(pending, people):
    response = client_for(people["outsider"]).post(
        reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending)
    )
    assert response.status_code == 403
    assert "does not have the permission" in response.content.decode()
    assert not Approval.objects.exists()


def test_a_crafted_post_by_the_requester_is_forbidden(pending, people):
    client = verified_client(people["releaser"])
    response = client.post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending))
    assert response.status_code == 403
    assert not Approval.objects.exists()


def test_a_crafted_post_without_a_verified_session_is_forbidden(pending, people):
    response = client_for(people["approver"]).post(
        reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending)
    )
    assert response.status_code == 403
    assert "second factor" in response.content.decode()
    assert not Approval.objects.exists()


def test_a_crafted_post_with_other_digests_is_refused(pending, people):
    client = verified_client(people["approver"])
    response = client.post(
        reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending, digest=["0" * 64, "1" * 64])
    )
    assert response.status_code == 409
    assert "digests differ" in response.content.decode()
    assert not Approval.objects.exists()


def test_a_crafted_post_with_an_unknown_decision_is_a_bad_request(pending, people):
    client = verified_client(people["approver"])
    response = client.post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending, "maybe"))
    assert response.status_code == 400
    assert not Approval.objects.exists()


def test_an_expired_request_is_refused_from_the_page(pending, people):
    Deployment.objects.filter(pk=pending.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = verified_client(people["approver"])
    response = client.post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending))
    assert response.status_code == 409
    assert "expired" in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in(pending):
    response = Client().post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending))
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    assert not Approval.objects.exists()


def test_the_requester_cancels_a_pending_request(pending, people):
    response = client_for(people["releaser"]).post(reverse("releases:approval_cancel", args=[pending.pk]))
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.outcome == Deployment.Outcome.CANCELLED
    assert AuditEvent.objects.filter(action="deployment.cancelled", actor_name="rita").exists()


def test_someone_else_cannot_cancel_a_request(pending, people):
    response = client_for(people["approver"]).post(reverse("releases:approval_cancel", args=[pending.pk]))
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.state == Deployment.State.PENDING_APPROVAL


def test_an_administrator_cancels_a_request(pending, people):
    response = client_for(people["admin"]).post(reverse("releases:approval_cancel", args=[pending.pk]))
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.outcome == Deployment.Outcome.CANCELLED


def test_a_wrong_one_time_password_is_refused_and_audited(people):
    client = verified_client(people["approver"])
    client.logout()
    client.force_login(people["approver"])
    response = client.post(reverse("releases:second_factor_verify"), {"token": "000000"})
    assert response.status_code == 400
    assert AuditEvent.objects.filter(action="second_factor.failed", actor_name="alice").exists()


def test_a_recovery_code_verifies_the_session_once(people):
    verified_client(people["approver"])
    code = StaticDevice.objects.get(user=people["approver"]).token_set.first().token
    client = client_for(people["approver"])
    first = client.post(reverse("releases:second_factor_verify"), {"token": code, "next": "/audit/"})
    assert first.status_code == 302 and first["Location"] == "/audit/"
    again = client_for(people["approver"]).post(reverse("releases:second_factor_verify"), {"token": code})
    assert again.status_code == 400


def test_otp_reset_removes_a_lost_device_and_is_audited(people, capsys):
    verified_client(people["approver"])
    call_command("otp_reset", "alice", "--reason", "lost phone")
    assert "removed 2 device(s) of alice" in capsys.readouterr().out
    assert not TOTPDevice.objects.filter(user=people["approver"]).exists()
    assert not StaticDevice.objects.filter(user=people["approver"]).exists()
    event = AuditEvent.objects.get(action="second_factor.reset")
    assert event.data == {"user": "alice", "devices": 2, "reason": "lost phone"}
    assert (
        AuditEvent.objects.filter(action="second_factor.device_removed", object_id=str(people["approver"].pk)).count()
        == 2
    )


def test_an_administrator_deleting_a_device_in_the_admin_is_audited(people):
    verified_client(people["approver"])
    device = TOTPDevice.objects.get(user=people["approver"])
    admin = verify_session(client_for(people["admin"]), people["admin"])
    response = admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    event = AuditEvent.objects.get(action="second_factor.device_removed")
    assert event.data["user"] == "alice" and event.data["device"] == f"otp_totp.totpdevice/{device.pk}"


def test_the_audit_page_filters_by_actor_action_object_and_date(pending, people):
    client = client_for(people["outsider"])
    url = reverse("releases:audit")

    by_actor = client.get(url, {"actor": "rita"}).content.decode()
    assert "deployment.requested" in by_actor and "environment.created" not in by_actor
    by_action = client.get(url, {"action": "environment."}).content.decode()
    assert "environment.created" in by_action and "deployment.requested" not in by_action
    by_object = client.get(url, {"object": f"deployment:{pending.pk}"}).content.decode()
    assert "deployment.requested" in by_object and "environment.created" not in by_object
    today = timezone.now().date().isoformat()
    assert "deployment.requested" in client.get(url, {"from": today, "to": today}).content.decode()
    assert "No event matches" in client.get(url, {"to": "2000-01-01"}).content.decode()
    by_release = client.get(url, {"release": pending.release_id}).content.decode()
    assert "deployment.requested" in by_release and "environment.created" not in by_release
    bad = client.get(url, {"from": "yesterday"})
    assert bad.status_code == 400
    assert "is not a date" in bad.content.decode()


def test_the_audit_page_is_paginated(environments, people):
    test_pypi, _ = environments
    from releases.services.projects import environment_update

    for hours in range(2, 60):
        environment_update(test_pypi, request_ttl_hours=hours, actor=people["admin"])
    client = client_for(people["outsider"])
    first = client.get(reverse("releases:audit"), {"actor": "root"}).content.decode()
    assert "Page 1 of 2" in first
    assert "page=2" in first and "actor=root" in first
    second = client.get(reverse("releases:audit"), {"actor": "root", "page": 2}).content.decode()
    assert "Page 2 of 2" in second
