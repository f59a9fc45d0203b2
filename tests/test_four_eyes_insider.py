"""An insider against four eyes: each attack made through the path a person
would take (the admin's forms posted as an admin-role user, the console's
pages, the ORM or SQL where that is the attacker's way in)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.test import Client

from releases.models import Approval, AuditEvent, ChangeRequest, Deployment, Environment, Job
from releases.services.approvals import DESTINATION, approval_give, approve_blockers, artifact_digests
from releases.services.audit import audit_verify_chain
from releases.services.change_decisions import ChangeDecisionRefused, change_decide
from releases.services.credentials import credential_set_value
from releases.services.deployments import deployment_request
from releases.services.pipeline import job_run
from releases.services.projects import environment_change, project_create
from releases.services.roles import role_assign
from tests.support.insider import (
    admin_form,
    environment_admin_url,
    messages_of,
    text_of,
    user_admin_url,
    verified_client,
)
from tests.support.people import make_user
from tests.support.publishing import pypi_environment, stored_release
from tests.support.pypi_packages import build_package
from tests.support.pypi_standin import PypiStandin

# Admins and protection (parts 1-3)


@pytest.fixture
def insider_people(db) -> dict[str, User]:
    return {
        "mallory": make_user("mallory", "admin"),  # the insider: the admin role, nothing more
        "adam": make_user("adam", "admin"),  # a second administrator
        "alice": make_user("alice", approver=True),
        "rita": make_user("rita", "releaser"),
    }


@pytest.fixture
def insider_pypi(insider_people, pypi_standin: PypiStandin) -> Environment:
    return pypi_environment(pypi_standin, "pypi", "PyPI", required_approvals=1, require_second_factor=True)


def insider_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def insider_decide(change: ChangeRequest, user: User, decision: str = "approve") -> ChangeRequest:
    return change_decide(change, user, decision, second_factor_verified=True)


# -- part 1: roles that cannot be climbed -----------------------------------------


def test_the_admin_site_needs_a_session_verified_with_a_second_factor(insider_people):
    client = Client()
    client.force_login(insider_people["mallory"])

    answer = client.get("/admin/auth/user/")

    assert answer.status_code == 302
    assert answer["Location"].startswith("/admin/login/")
    login = client.get(answer["Location"])
    assert login.status_code == 302 and login["Location"].startswith("/account/second-factor/")
    assert verified_client(insider_people["mallory"]).get("/admin/auth/user/").status_code == 200


def test_an_admin_cannot_make_itself_superuser_or_approver_through_the_user_admin(insider_people):
    mallory = insider_people["mallory"]
    client = verified_client(mallory)
    url = user_admin_url(mallory)
    posted = admin_form(client, url)
    assert "is_superuser" not in posted and "groups" not in posted  # not offered at all
    approver = Group.objects.get(name="approver")

    answer = client.post(
        url,
        {
            **posted,
            "is_superuser": "on",
            "is_staff": "on",
            "groups": [approver.pk, Group.objects.get(name="admin").pk],
            "user_permissions": [],
            "_save": "Save",
        },
    )

    assert answer.status_code == 302, answer.content[:2000]
    mallory = User.objects.get(pk=mallory.pk)
    assert not mallory.is_superuser
    assert sorted(mallory.groups.values_list("name", flat=True)) == ["admin", "viewer"]
    assert not mallory.has_perm("releases.approve_deployment")
    assert not ChangeRequest.objects.exists()


def test_an_admin_cannot_set_another_persons_password_in_the_admin(insider_people):
    alice = insider_people["alice"]
    client = verified_client(insider_people["mallory"])
    url = user_admin_url(alice, "password")

    shown = client.get(url)
    posted = client.post(url, {"password1": "mallory-knows-this-1", "password2": "mallory-knows-this-1"})

    assert shown.status_code == posted.status_code == 403
    alice.refresh_from_db()
    assert alice.check_password("correct horse battery staple")
    assert not alice.check_password("mallory-knows-this-1")
    assert not insider_events("person.password_changed")


def test_a_person_added_in_the_admin_has_no_role_and_is_in_the_chain(insider_people):
    client = verified_client(insider_people["mallory"])

    answer = client.post(
        "/admin/auth/user/add/",
        {
            "username": "sock-puppet",
            "email": "puppet@example.org",
            "password": "a long enough passphrase 9",
            "_save": "1",
        },
    )

    assert answer.status_code == 302, answer.content[:2000]
    puppet = User.objects.get(username="sock-puppet")
    assert list(puppet.groups.all()) == [] and not puppet.is_staff and not puppet.is_superuser
    created = insider_events("person.created")[-1]
    assert created.actor_name == "mallory" and created.data["username"] == "sock-puppet"
    assert "password" not in created.data and created.data["password_usable"] is True


def test_a_role_is_given_only_when_another_admin_approves_and_the_chain_keeps_before_and_after(insider_people):
    mallory, adam = insider_people["mallory"], insider_people["adam"]
    client = verified_client(mallory)

    answer = client.post(
        "/admin/auth/user/", {"action": "request_approver", "_selected_action": [mallory.pk]}, follow=True
    )

    assert answer.status_code == 200
    change = ChangeRequest.objects.get(kind=ChangeRequest.Kind.ROLE)
    assert change.is_pending and change.requested_by == mallory
    assert not User.objects.get(pk=mallory.pk).has_perm("releases.approve_deployment")
    # Mallory cannot decide her own request, on the page or through the service.
    refused = client.post(f"/changes/{change.pk}/decide/", {"decision": "approve"})
    assert refused.status_code == 403
    assert "another administrator must decide it" in text_of(refused.content.decode())
    with pytest.raises(ChangeDecisionRefused):
        insider_decide(change, mallory)
    assert ChangeRequest.objects.get(pk=change.pk).is_pending
    # A GET decides nothing.
    assert verified_client(adam).get(f"/changes/{change.pk}/decide/").status_code == 405

    decided = verified_client(adam).post(f"/changes/{change.pk}/decide/", {"decision": "approve"})

    assert decided.status_code == 302
    assert User.objects.get(pk=mallory.pk).has_perm("releases.approve_deployment")
    assigned = insider_events("role.assigned")[-1]
    assert assigned.actor_name == "adam"
    assert assigned.data["roles"] == {"before": ["admin", "viewer"], "after": ["admin", "approver", "viewer"]}
    applied = insider_events("change_request.applied")[-1]
    assert applied.data["requested_by"] == "mallory" and applied.actor_name == "adam"
    assert audit_verify_chain() is None


def test_the_person_a_role_is_for_cannot_approve_it(insider_people):
    mallory, adam = insider_people["mallory"], insider_people["adam"]
    change = verified_client(adam).post(
        "/admin/auth/user/", {"action": "request_approver", "_selected_action": [mallory.pk]}
    )
    assert change.status_code == 302
    request = ChangeRequest.objects.get()

    with pytest.raises(ChangeDecisionRefused, match="This change is about you"):
        insider_decide(request, mallory)
    assert not User.objects.get(pk=mallory.pk).has_perm("releases.approve_deployment")


def test_a_password_reset_of_another_person_is_a_request_and_no_admin_learns_the_password(
    insider_people, django_capture_on_commit_callbacks
):
    mallory, adam, alice = insider_people["mallory"], insider_people["adam"], insider_people["alice"]
    verified_client(mallory).post(
        "/admin/auth/user/", {"action": "request_password_reset", "_selected_action": [alice.pk]}
    )
    change = ChangeRequest.objects.get(kind=ChangeRequest.Kind.PASSWORD_RESET)
    assert User.objects.get(pk=alice.pk).check_password("correct horse battery staple")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        insider_decide(change, adam)

    alice = User.objects.get(pk=alice.pk)
    assert not alice.has_usable_password()
    [message] = [m for m in mail.outbox if m.to == ["alice@example.org"]]
    assert "/accounts/reset/" in message.body
    reset = insider_events("person.password_reset")[-1]
    assert reset.actor_name == "adam" and "password" not in str(reset.data).replace("password_reset", "")


def test_other_changes_to_another_persons_account_wait_and_deactivation_is_at_once(insider_people):
    mallory, adam, alice = insider_people["mallory"], insider_people["adam"], insider_people["alice"]
    client = verified_client(mallory)
    url = user_admin_url(alice)
    posted = admin_form(client, url)

    # Her address is where a reset link would go: taking it is a request.
    client.post(url, {**posted, "email": "mallory@evil.example", "_save": "Save"})

    assert User.objects.get(pk=alice.pk).email == "alice@example.org"
    change = ChangeRequest.objects.get(kind=ChangeRequest.Kind.PERSON)
    assert change.changes == {"email": {"before": "alice@example.org", "after": "mallory@evil.example"}}
    insider_decide(change, adam, "refuse")
    assert User.objects.get(pk=alice.pk).email == "alice@example.org"

    posted.pop("is_active")
    client.post(url, {**posted, "_save": "Save"})

    assert not User.objects.get(pk=alice.pk).is_active
    changed = insider_events("person.changed")[-1]
    assert changed.actor_name == "mallory" and changed.data["is_active"] == {"before": True, "after": False}


def test_people_changed_outside_the_console_are_in_the_chain_with_before_and_after(insider_people):
    alice = insider_people["alice"]
    # A shell: the ORM as an insider with server access would use it.
    alice.groups.add(Group.objects.get(name="admin"))
    alice.is_superuser = True
    alice.save()

    [role] = [e for e in insider_events("role.assigned") if e.data.get("outside_the_console_pages")]
    assert role.data["roles"] == {"before": ["approver", "viewer"], "after": ["admin", "approver", "viewer"]}
    changed = insider_events("person.changed")[-1]
    assert changed.data["is_superuser"] == {"before": False, "after": True}
    assert changed.data["outside_the_console_pages"] is True
    make_user("sock-puppet").delete()
    assert insider_events("person.deleted")[-1].data["username"] == "sock-puppet"
    assert audit_verify_chain() is None


# -- part 2: protection changes need a second admin --------------------------------


def test_lowering_approvals_in_the_environment_admin_waits_for_a_second_admin(
    insider_people, insider_pypi, django_capture_on_commit_callbacks
):
    mallory, adam = insider_people["mallory"], insider_people["adam"]
    client = verified_client(mallory)
    url = environment_admin_url(insider_pypi)
    posted = admin_form(client, url)
    posted.pop("require_second_factor")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(url, {**posted, "required_approvals": 0, "_save": "Save"}, follow=True)

    assert answer.status_code == 200
    assert any("waits for a second administrator" in m for m in messages_of(answer))
    pypi = Environment.objects.get(pk=insider_pypi.pk)
    assert (pypi.required_approvals, pypi.require_second_factor) == (1, True)
    change = ChangeRequest.objects.get(kind=ChangeRequest.Kind.ENVIRONMENT)
    assert change.changes == {
        "required_approvals": {"before": 1, "after": 0},
        "require_second_factor": {"before": True, "after": False},
    }
    # The approvers hear of it; the requester cannot approve it.
    assert any(m.to == ["alice@example.org"] and "required_approvals: 1 → 0" in m.body for m in mail.outbox)
    with pytest.raises(ChangeDecisionRefused):
        insider_decide(change, mallory)
    assert Environment.objects.get(pk=insider_pypi.pk).required_approvals == 1

    insider_decide(change, adam)

    pypi = Environment.objects.get(pk=insider_pypi.pk)
    assert (pypi.required_approvals, pypi.require_second_factor) == (0, False)
    event = insider_events("environment.changed")[-1]
    assert event.actor_name == "adam" and event.data["change_request"] == change.pk
    assert event.data["required_approvals"] == {"before": 1, "after": 0}


def test_an_admin_who_lowers_approvals_still_cannot_publish_alone(
    transactional_db, monkeypatch, insider_people, insider_pypi, tmp_path: Path
):
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    mallory = insider_people["mallory"]
    role_assign(mallory, "releaser", actor=None)
    client = verified_client(mallory)
    url = environment_admin_url(insider_pypi)
    client.post(url, {**admin_form(client, url), "required_approvals": 0, "_save": "Save"})
    change = ChangeRequest.objects.get()
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    release = stored_release(project, "1.0.0", build_package(tmp_path, "sample-pkg", "1.0.0").paths)

    deployment = deployment_request(release=release, environment=insider_pypi, actor=User.objects.get(pk=mallory.pk))

    assert deployment.state == Deployment.State.PENDING_APPROVAL and deployment.required_approvals == 1
    # Nor does the database take her decision on her own request, whatever code writes it.
    with pytest.raises(IntegrityError), transaction.atomic():
        ChangeRequest.objects.filter(pk=change.pk).update(decided_by=mallory)


def test_another_upload_url_in_the_environment_admin_is_a_request_and_raising_is_at_once(insider_people, insider_pypi):
    client = verified_client(insider_people["mallory"])
    url = environment_admin_url(insider_pypi)
    posted = admin_form(client, url)
    original = insider_pypi.upload_url

    client.post(url, {**posted, "upload_url": "https://evil.example/legacy/", "required_approvals": 3, "_save": "Save"})

    pypi = Environment.objects.get(pk=insider_pypi.pk)
    assert pypi.upload_url == original  # lowering: waits
    assert pypi.required_approvals == 3  # raising: at once
    change = ChangeRequest.objects.get()
    assert change.changes == {"upload_url": {"before": original, "after": "https://evil.example/legacy/"}}
    raised = insider_events("environment.changed")[-1]
    assert raised.actor_name == "mallory" and raised.data["required_approvals"] == {"before": 1, "after": 3}


def test_a_new_environment_cannot_borrow_a_protected_environments_token(insider_people, insider_pypi):
    client = verified_client(insider_people["mallory"])

    answer = client.post(
        "/admin/releases/environment/add/",
        {
            "name": "pypi-fast",
            "title": "PyPI, fast",
            "upload_url": insider_pypi.upload_url,
            "index_url": insider_pypi.index_url,
            "credential": insider_pypi.credential_id,
            "required_approvals": 0,
            "request_ttl_hours": 24,
            "position": 5,
            "block_severity": "none",
            "_save": "Save",
        },
    )

    assert answer.status_code == 200  # the form again, with the refusal
    assert "give this environment a token of its own" in text_of(answer.content.decode())
    assert not Environment.objects.filter(name="pypi-fast").exists()


# -- part 3: approvals bind the destination ----------------------------------------


@pytest.fixture
def insider_push(transactional_db, monkeypatch, insider_people, insider_pypi, tmp_path: Path) -> Deployment:
    """A push to pypi (the stand-in), asked for by rita and approved by alice
    with a second factor; its upload job is queued, run by the test."""
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    release = stored_release(project, "1.0.0", build_package(tmp_path, "sample-pkg", "1.0.0").paths)
    deployment = deployment_request(release=release, environment=insider_pypi, actor=insider_people["rita"])
    assert deployment.state == Deployment.State.PENDING_APPROVAL
    approval_give(
        deployment,
        insider_people["alice"],
        "approve",
        digests_seen=artifact_digests(deployment),
        second_factor_verified=True,
    )
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.QUEUED
    return deployment


def insider_run_upload(deployment: Deployment) -> Deployment:
    job = Job.objects.get(deployment=deployment, kind=Job.Kind.UPLOAD, state=Job.State.QUEUED)
    job_run(job.pk)
    deployment.refresh_from_db()
    return deployment


def test_a_push_records_its_destination_and_the_approval_is_bound_to_it(insider_push, insider_pypi, pypi_standin):
    destination = insider_push.destination
    assert destination["upload_url"] == pypi_standin.upload_url
    assert destination["index_url"] == pypi_standin.simple_url
    assert destination["credential_id"] == insider_pypi.credential_id
    assert len(destination["credential_fingerprint"]) == 64
    assert (destination["required_approvals"], destination["require_second_factor"]) == (1, True)
    token = insider_pypi.credential
    assert token is not None and token.last_four not in destination["credential_fingerprint"]
    assert Approval.objects.get(deployment=insider_push).destination == destination
    given = insider_events("approval.given")[-1]
    assert given.data["destination"] == destination

    page = verified_client(insider_push.requested_by).get(f"/deployments/{insider_push.pk}/approval/")

    text = text_of(page.content.decode())
    assert "Where it goes" in text and pypi_standin.upload_url in text
    assert destination["credential_fingerprint"][:16] in text


def test_the_upload_url_changed_after_approval_is_refused_before_the_first_byte(
    insider_push, insider_people, insider_pypi, pypi_standin
):
    evil = PypiStandin().start()
    try:
        # Mallory asks, and a second administrator is talked into it: the
        # change is in effect, but the approval was for the old address.
        result = environment_change(
            insider_pypi, actor=insider_people["mallory"], upload_url=evil.upload_url, index_url=evil.simple_url
        )
        assert result.request is not None
        insider_decide(result.request, insider_people["adam"])
        assert Environment.objects.get(pk=insider_pypi.pk).upload_url == evil.upload_url

        done = insider_run_upload(insider_push)

        assert done.outcome == Deployment.Outcome.FAILED
        assert "PyPI changed since this push was asked for and approved" in done.reason
        assert f"the upload URL was '{pypi_standin.upload_url}' when approved and is '{evil.upload_url}' now" in (
            done.reason
        )
        assert "Nothing was sent" in done.reason
        assert (len(evil.uploads), evil.upload_bytes_received) == (0, 0)
        assert (len(pypi_standin.uploads), pypi_standin.upload_bytes_received) == (0, 0)
    finally:
        evil.stop()


def test_an_upload_url_rewritten_in_the_database_after_approval_sends_nothing(insider_push, insider_pypi, pypi_standin):
    evil = PypiStandin().start()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE releases_environment SET upload_url = %s WHERE id = %s", [evil.upload_url, insider_pypi.pk]
            )

        done = insider_run_upload(insider_push)

        assert done.outcome == Deployment.Outcome.FAILED
        assert "the upload URL was" in done.reason and "Nothing was sent" in done.reason
        assert (len(evil.uploads), evil.upload_bytes_received) == (0, 0)
        assert len(pypi_standin.uploads) == 0
    finally:
        evil.stop()


def test_a_destination_rewritten_to_match_leaves_no_valid_approval(insider_push, insider_pypi, pypi_standin):
    """The attacker rewrites both the environment and the deployment's record:
    the approval was given for the old destination and no longer counts."""
    evil = PypiStandin().start()
    try:
        Environment.objects.filter(pk=insider_pypi.pk).update(upload_url=evil.upload_url)
        moved = {**insider_push.destination, "upload_url": evil.upload_url}
        Deployment.objects.filter(pk=insider_push.pk).update(destination=moved)

        done = insider_run_upload(insider_push)

        assert done.outcome == Deployment.Outcome.FAILED
        assert "0 of 1 required approvals are valid" in done.reason
        assert (len(evil.uploads), evil.upload_bytes_received) == (0, 0)
    finally:
        evil.stop()


def test_a_token_replaced_after_approval_is_refused(insider_push, insider_pypi, pypi_standin):
    assert insider_pypi.credential is not None
    credential_set_value(insider_pypi.credential, pypi_standin.state.token_for("mallory"), actor=None)

    done = insider_run_upload(insider_push)

    assert done.outcome == Deployment.Outcome.FAILED
    assert "the token is another one" in done.reason
    assert len(pypi_standin.uploads) == 0


def test_the_approval_page_refuses_to_approve_for_a_moved_destination(
    transactional_db, monkeypatch, insider_people, insider_pypi, tmp_path: Path
):
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    release = stored_release(project, "1.0.0", build_package(tmp_path, "sample-pkg", "1.0.0").paths)
    deployment = deployment_request(release=release, environment=insider_pypi, actor=insider_people["rita"])
    Environment.objects.filter(pk=insider_pypi.pk).update(index_url="https://evil.example/simple/")

    assert [b.code for b in approve_blockers(deployment)][:1] == [DESTINATION]


def test_an_unchanged_approved_push_uploads(insider_push, pypi_standin):
    done = insider_run_upload(insider_push)

    assert done.state == Deployment.State.VERIFYING, done.reason
    assert len(pypi_standin.uploads) == 2
