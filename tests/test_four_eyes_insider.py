"""Four eyes that hold against an insider: each attack made the way a person
would make it (the admin's forms posted as an admin-role user, the console's
pages, the command line, a signed webhook, the ORM or SQL where that is the
attacker's way in), and refused or found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse

from releases.models import (
    Approval,
    AuditAction,
    AuditEvent,
    ChangeRequest,
    Deployment,
    Environment,
    Job,
    Project,
    WebhookDelivery,
    WorkflowRun,
)
from releases.services.approvals import (
    DESTINATION,
    ApprovalRefused,
    approval_give,
    approvals_problem,
    approve_blockers,
    artifact_digests,
    can_approve,
)
from releases.services.audit import audit_verify_chain, chain_hash, event_payload
from releases.services.change_decisions import ChangeDecisionRefused, change_decide
from releases.services.credentials import credential_create, credential_set_value
from releases.services.deployments import deployment_request
from releases.services.pipeline import job_run
from releases.services.projects import environment_change, environment_create, project_create, project_set_github
from releases.services.roles import role_assign, service_account
from releases.services.webhooks import webhook_process
from tests.support.audit import insider_connection, make_history, manage
from tests.support.console import DeploymentFactory, EnvironmentFactory, ProjectFactory, ReleaseFactory
from tests.support.github_standin import GitHubStandIn
from tests.support.insider import (
    admin_form,
    environment_admin_url,
    messages_of,
    text_of,
    user_admin_url,
    verified_client,
)
from tests.support.insider_edges import (
    NO_ROLE_NEEDED,
    WEBHOOK_SECRET,
    insider_deliver,
    insider_every_route,
    insider_release_event,
    insider_sends_to_sign_in,
    insider_sign,
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


@pytest.fixture
def insider_guarded(insider_people, pypi_standin: PypiStandin) -> Environment:
    """PyPI with every rule of LOWERS raised: an earlier environment, a ref
    pattern, a vulnerability gate, PyPI's rules and its account."""
    earlier = pypi_environment(pypi_standin, "test-pypi", "Test PyPI", account="bob")
    return pypi_environment(
        pypi_standin,
        "pypi",
        "PyPI",
        required_approvals=1,
        require_second_factor=True,
        after=earlier.name,
        allowed_ref_pattern="v*",
        block_severity="high",
    )


def _spare_credential() -> int:
    return credential_create(name="spare-token", value="pypi-" + "s" * 40, actor=None).pk


@pytest.mark.parametrize(
    ("field", "lowered"),
    [
        ("index_url", lambda: "https://evil.example/simple/"),
        ("credential", _spare_credential),
        ("requires_success_in", lambda: ""),
        ("allowed_ref_pattern", lambda: ""),
        ("pypi_rules", lambda: None),  # the checkbox left unticked
        ("index_account", lambda: "mallory"),
        ("block_severity", lambda: "critical"),
    ],
)
def test_each_lowering_in_the_environment_admin_waits_for_a_second_admin(
    insider_people, insider_guarded, field, lowered
):
    client = verified_client(insider_people["mallory"])
    url = environment_admin_url(insider_guarded)
    posted = admin_form(client, url)
    before = Environment.objects.filter(pk=insider_guarded.pk).values().get()
    value = lowered()
    if value is None:
        posted.pop(field)
    else:
        posted[field] = value

    answer = client.post(url, {**posted, "_save": "Save"}, follow=True)

    assert answer.status_code == 200
    assert any("waits for a second administrator" in m for m in messages_of(answer)), messages_of(answer)
    assert Environment.objects.filter(pk=insider_guarded.pk).values().get() == before
    change = ChangeRequest.objects.get(kind=ChangeRequest.Kind.ENVIRONMENT)
    assert list(change.changes) == [field]
    assert not AuditEvent.objects.filter(action="environment.changed", object_id=str(insider_guarded.pk)).exists()


def test_raising_protection_is_at_once_mailed_and_audited_with_before_and_after(
    insider_people, insider_pypi, django_capture_on_commit_callbacks
):
    client = verified_client(insider_people["mallory"])
    url = environment_admin_url(insider_pypi)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {**admin_form(client, url), "required_approvals": 2, "_save": "Save"})

    assert Environment.objects.get(pk=insider_pypi.pk).required_approvals == 2
    assert not ChangeRequest.objects.exists()
    raised = insider_events("environment.changed")[-1]
    assert raised.actor_name == "mallory" and raised.data["required_approvals"] == {"before": 1, "after": 2}
    assert any(m.to == ["alice@example.org"] and "required_approvals: 1 → 2" in m.body for m in mail.outbox), [
        m.body for m in mail.outbox
    ]


def test_only_the_requester_cancels_a_change_request_and_it_then_changes_nothing(insider_people, insider_pypi):
    mallory, adam = insider_people["mallory"], insider_people["adam"]
    change = environment_change(insider_pypi, actor=mallory, required_approvals=0).request
    assert change is not None
    cancel = f"/changes/{change.pk}/cancel/"

    refused = verified_client(adam).post(cancel)
    assert refused.status_code == 403
    assert "Only the administrator who asked can cancel this request." in text_of(refused.content.decode())

    verified_client(mallory).post(cancel)

    change.refresh_from_db()
    assert change.outcome == ChangeRequest.Outcome.CANCELLED
    with pytest.raises(ChangeDecisionRefused):
        insider_decide(change, adam)
    assert Environment.objects.get(pk=insider_pypi.pk).required_approvals == 1


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


# Requests, pages and webhooks (parts 5-9)


@pytest.fixture
def edges_standin() -> Iterator[PypiStandin]:
    """The index a push would go to: it must receive nothing."""
    standin = PypiStandin().start()
    yield standin
    standin.stop()


@pytest.fixture
def edges_release(db: None, edges_standin: PypiStandin):
    """A built release, and "pypi" on the stand-in: one approval, no second factor asked."""
    release = ReleaseFactory(
        project=ProjectFactory(name="sample-pkg"), version="1.0.0", files={"sample_pkg-1.0.0.tar.gz": b"an sdist"}
    )
    environment_create(
        name="pypi",
        title="PyPI",
        upload_url=edges_standin.upload_url,
        index_url=edges_standin.simple_url,
        token="pypi-upload-token-for-tests",
        required_approvals=1,
        require_second_factor=False,
        actor=None,
    )
    return release


def _edges_decide(client: Client, deployment: Deployment, decision: str = "approve"):
    digests = sorted(deployment.release.artifacts.values_list("sha256", flat=True))
    return client.post(
        reverse("releases:approval_decide", args=[deployment.pk]), {"decision": decision, "digest": digests}
    )


# -- part 5: every request has a person ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_publish_on_the_command_line_then_approve_in_the_browser_is_refused(edges_release, edges_standin):
    """The attack of issue 14: ask on the command line, approve in the browser."""
    make_user("rita", "releaser", approver=True)

    nameless = manage("publish", "sample-pkg", "1.0.0", "--to", "pypi")
    assert nameless.returncode != 0
    assert "PyPI needs approval, so a named person must ask for it" in nameless.stderr
    assert "--as USERNAME" in nameless.stderr
    assert not Deployment.objects.exists()

    asked = manage("publish", "sample-pkg", "1.0.0", "--to", "pypi", "--as", "rita")
    assert asked.returncode == 0, asked.stderr
    deployment = Deployment.objects.get()
    assert deployment.requested_by is not None and deployment.requested_by.username == "rita"
    requested = AuditEvent.objects.get(action=AuditAction.DEPLOYMENT_REQUESTED)
    assert requested.actor_name == "rita"

    browser = Client()
    browser.force_login(deployment.requested_by)
    response = _edges_decide(browser, deployment)

    assert response.status_code == 403
    assert b"You requested this push; another person must approve it." in response.content
    assert not Approval.objects.exists()
    assert approvals_problem(deployment) is not None
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.PENDING_APPROVAL
    assert edges_standin.upload_bytes_received == 0


def test_publish_as_someone_who_is_not_a_releaser_is_refused(edges_release):
    make_user("ada", approver=True)
    with pytest.raises(CommandError, match="You do not have the request deployment permission"):
        call_command("publish", "sample-pkg", "1.0.0", "--to", "pypi", "--as", "ada")
    with pytest.raises(CommandError, match="There is no active user named 'nobody-here'"):
        call_command("publish", "sample-pkg", "1.0.0", "--to", "pypi", "--as", "nobody-here")
    # Nor as "the webhook", to approve it oneself afterwards.
    service_account()
    with pytest.raises(CommandError, match="github-webhook is the service account webhooks act as; act as a person"):
        call_command("publish", "sample-pkg", "1.0.0", "--to", "pypi", "--as", "github-webhook")
    assert not Deployment.objects.exists()


def test_publish_without_as_still_works_where_no_approval_is_needed(edges_release):
    EnvironmentFactory(name="sandbox")
    call_command("publish", "sample-pkg", "1.0.0", "--to", "sandbox")
    deployment = Deployment.objects.get()
    assert deployment.requested_by is None and deployment.state == Deployment.State.QUEUED


def test_release_create_as_a_person_needs_the_releaser_role_and_records_them(db):
    ProjectFactory(name="sample-pkg")
    make_user("vera")
    make_user("rita", "releaser")
    with pytest.raises(CommandError, match="vera does not have the add release permission"):
        call_command("release_create", "sample-pkg", "1.0.0", "--ref", "v1.0.0", "--as", "vera")
    call_command("release_create", "sample-pkg", "1.0.0", "--ref", "v1.0.0", "--as", "rita")
    created = AuditEvent.objects.get(action=AuditAction.RELEASE_CREATED)
    assert created.actor_name == "rita"


def test_a_request_with_nobody_on_record_cannot_be_written_nor_approved(edges_release, edges_standin):
    """The database refuses an open push that needs approval without a
    requester; one written anyway (before the rule, or past it by the
    table's owner) is never approvable: "the requester cannot approve"
    could not hold."""
    deployment = DeploymentFactory(
        release=edges_release,
        environment=Environment.objects.get(name="pypi"),
        state=Deployment.State.PENDING_APPROVAL,
        outcome="",
    )
    with pytest.raises(IntegrityError, match="deployment_approval_needs_requester"), transaction.atomic():
        Deployment.objects.filter(pk=deployment.pk).update(requested_by=None)
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE releases_deployment DROP CONSTRAINT deployment_approval_needs_requester")
    Deployment.objects.filter(pk=deployment.pk).update(requested_by=None)
    deployment.refresh_from_db()
    amy = make_user("amy", approver=True)

    with pytest.raises(ApprovalRefused, match="Nobody on record asked for this push"):
        approval_give(
            deployment,
            amy,
            "approve",
            digests_seen=edges_release.artifacts.values_list("sha256", flat=True),
            second_factor_verified=True,
        )
    assert approvals_problem(deployment) == (
        "The request has no requester on record; ask for the push again as a named person."
    )
    assert edges_standin.upload_bytes_received == 0


def test_a_release_tag_is_requested_by_the_service_account_which_never_approves(client, edges_release, settings):
    settings.CONSOLE_SERVICE_ACCOUNT = "github-webhook"
    project = project_set_github(
        Project.objects.get(name="sample-pkg"), repository="acme/sample-pkg", webhook_secret=WEBHOOK_SECRET, actor=None
    )
    # The release tag's deployment goes to an environment that needs approval.
    Environment.objects.filter(name="pypi").update(name="test-pypi")

    response = insider_deliver(client, project.name, "release", insider_release_event("v2.0.0", "acme/sample-pkg"))
    assert response.status_code == 202
    webhook_process(WebhookDelivery.objects.get())

    deployment = Deployment.objects.get(release__version="2.0.0")
    robot = service_account()
    assert deployment.requested_by == robot
    assert deployment.state == Deployment.State.PENDING_APPROVAL
    assert not robot.has_usable_password()
    assert AuditEvent.objects.get(action=AuditAction.DEPLOYMENT_REQUESTED, release=deployment.release).actor == robot

    for role in ("approver", "admin"):
        with pytest.raises(ValidationError, match="it requests and never decides"):
            role_assign(robot, role)
    # An admin who puts it in the approver group by hand gains nothing.
    robot.groups.add(Group.objects.get(name="approver"))
    robot = service_account()
    assert not can_approve(robot)
    with pytest.raises(ApprovalRefused, match="does not have the permission to approve"):
        approval_give(
            deployment,
            robot,
            "approve",
            digests_seen=deployment.release.artifacts.values_list("sha256", flat=True),
            second_factor_verified=True,
        )
    assert not Approval.objects.exists()


def test_the_service_account_cannot_sign_in_even_with_a_password_an_admin_set(client, db):
    """Else one person could ask as the service account and approve as themselves."""
    robot = service_account()
    robot.set_password("an admin chose this password")
    robot.save()

    response = client.post(reverse("login"), {"username": robot.username, "password": "an admin chose this password"})

    assert response.status_code == 200  # the form again, as for a wrong password
    assert "_auth_user_id" not in client.session
    # A session made some other way holds no user: the backend will not load it.
    client.force_login(robot)
    assert insider_sends_to_sign_in(client.get(reverse("releases:approvals")))


# -- part 6: nothing without a role --------------------------------------------------


@pytest.fixture
def edges_world(db: None) -> dict[str, str]:
    """A row of every kind a URL names, and the values that fill each URL pattern."""
    release = ReleaseFactory(
        project=ProjectFactory(name="sample-pkg"), version="1.0.0", files={"sample_pkg-1.0.0.tar.gz": b"an sdist"}
    )
    environment = EnvironmentFactory(name="test-pypi")
    deployment = DeploymentFactory(release=release, environment=environment)
    artifact = release.artifacts.get()
    # A change waiting for a second admin: fewer approvals than the one it needs.
    protected = EnvironmentFactory(name="pypi", required_approvals=1)
    change = environment_change(protected, actor=make_user("edges-admin", "admin"), required_approvals=0).request
    assert change is not None
    return {
        "name": release.project.name,
        "project_name": release.project.name,
        "version": release.version,
        "environment": environment.name,
        "deployment_id": str(deployment.pk),
        "job_id": str(release.jobs.first().pk),  # type: ignore[union-attr]
        "artifact_id": str(artifact.pk),
        "filename": artifact.filename,
        "token": "not-a-handout-token",
        "change_id": str(change.pk),
        # The admin's patterns.
        "app_label": "releases",
        "object_id": str(release.project.pk),
        "id": "1",
        "pk": "1",
        "uidb64": "MQ",
        "content_type_id": "1",
        "url": "somewhere/",
    }


@pytest.mark.parametrize("visitor", ["anonymous", "signed in, no role"])
def test_every_url_refuses_anyone_without_a_role(edges_world, visitor):
    """Walks every URL pattern the console serves: one added without a role
    check fails here (a 200, a 404 that tells what exists, a 400...)."""
    client = Client()
    if visitor != "anonymous":
        # Signed in with a password, and in no role's group.
        client.force_login(User.objects.create_user("no-role", password="a-long-test-password-42"))
    routes = insider_every_route(edges_world)
    assert len(routes) > 40  # the admin's, the console's, the passkeys'
    leaks = []
    for route in routes:
        if route.name in NO_ROLE_NEEDED:
            continue
        answers = {method: getattr(client, method)(route.url) for method in ("get", "post")}
        checked = [m for m, r in answers.items() if r.status_code == 403 or insider_sends_to_sign_in(r)]
        unchecked = {m: r.status_code for m, r in answers.items() if m not in checked and r.status_code != 405}
        if unchecked or not checked:
            leaks.append(f"{route.name or '(unnamed)'} {route.url}: {unchecked or 'no method checked the role'}")
    assert leaks == []


def test_the_allow_list_names_only_patterns_that_exist(edges_world):
    names = {route.name for route in insider_every_route(edges_world)}
    assert set(NO_ROLE_NEEDED) <= names


# -- part 8: webhooks bound to their repository --------------------------------------


@pytest.fixture
def edges_hooked(db: None) -> Project:
    EnvironmentFactory(name="test-pypi")
    return project_set_github(
        ProjectFactory(name="sample-pkg"), repository="acme/sample-pkg", webhook_secret=WEBHOOK_SECRET, actor=None
    )


def test_a_signed_release_event_for_another_repository_starts_nothing(client, edges_hooked):
    response = insider_deliver(client, "sample-pkg", "release", insider_release_event("v1.0.0", "mallory/sample-pkg"))

    assert response.status_code == 422
    assert "not sample-pkg's repository 'acme/sample-pkg'" in response.json()["detail"]
    delivery = WebhookDelivery.objects.get()
    assert not delivery.accepted and delivery.payload is None
    assert not Deployment.objects.exists() and not edges_hooked.releases.exists()  # type: ignore[attr-defined]


def test_the_repository_is_compared_without_case_as_github_does(client, edges_hooked):
    response = insider_deliver(client, "sample-pkg", "release", insider_release_event("v1.0.0", "ACME/Sample-Pkg"))
    assert response.status_code == 202


@pytest.fixture
def edges_github() -> Iterator[GitHubStandIn]:
    github = GitHubStandIn()
    github.start()
    yield github
    github.stop()


@pytest.fixture
def edges_run(edges_hooked: Project, edges_github: GitHubStandIn) -> tuple[GitHubStandIn, WorkflowRun]:
    """A run of the project's workflow that one of its deployments follows."""
    github = edges_github
    run = github.add_run("publish.yml", "a" * 40, event="workflow_dispatch", status="in_progress")
    release = ReleaseFactory(project=edges_hooked, version="1.0.0", files={"sample_pkg-1.0.0.tar.gz": b"x"})
    deployment = DeploymentFactory(
        release=release,
        environment=Environment.objects.get(name="test-pypi"),
        state=Deployment.State.UPLOADING,
        outcome="",
    )
    tracked = WorkflowRun.objects.create(
        deployment=deployment,
        repository="acme/sample-pkg",
        workflow_file="publish.yml",
        dispatched_at=deployment.created_at,
        run_id=run.id,
        status="in_progress",
    )
    return github, tracked


def _edges_process() -> None:
    for delivery in WebhookDelivery.objects.filter(state=WebhookDelivery.State.QUEUED):
        webhook_process(delivery)


def test_a_workflow_run_is_matched_by_repository_and_workflow_not_by_run_id_alone(client, edges_run):
    github, tracked = edges_run
    (run,) = github.runs
    other_repository = github.workflow_run_event(run, status="completed")
    other_repository["repository"]["full_name"] = "mallory/sample-pkg"
    other_workflow = github.workflow_run_event(run, status="completed")
    other_workflow["workflow_run"]["path"] = other_workflow["workflow"]["path"] = ".github/workflows/evil.yml"

    answers = [insider_deliver(client, "sample-pkg", "workflow_run", p) for p in (other_repository, other_workflow)]
    _edges_process()

    assert [a.status_code for a in answers] == [422, 200]
    tracked.refresh_from_db()
    assert (tracked.status, tracked.conclusion) == ("in_progress", "")


def test_a_late_in_progress_after_completed_is_ignored_and_counted(client, edges_run):
    github, tracked = edges_run
    (run,) = github.runs
    run.conclusion = "failure"
    completed = github.workflow_run_event(run, status="completed")
    late = github.workflow_run_event(run, status="in_progress")

    insider_deliver(client, "sample-pkg", "workflow_run", completed)
    _edges_process()
    insider_deliver(client, "sample-pkg", "workflow_run", late)
    _edges_process()

    tracked.refresh_from_db()
    assert (tracked.status, tracked.conclusion, tracked.late_events) == ("completed", "failure", 1)
    ignored = WebhookDelivery.objects.order_by("id").last()
    assert ignored is not None and ignored.outcome == WebhookDelivery.Outcome.IGNORED
    assert "would move the run backwards" in ignored.reason


def test_refused_deliveries_are_counted_per_address_then_throttled(client, edges_hooked, settings):
    settings.WEBHOOK_REFUSALS_PER_WINDOW = 5
    forged = json.dumps(insider_release_event("v1.0.0", "acme/sample-pkg")).encode()
    url = reverse("releases:github_webhook", args=["sample-pkg"])

    def forge(address: str):
        return client.post(
            url,
            data=forged,
            content_type="application/json",
            headers={
                "X-GitHub-Event": "release",
                "X-GitHub-Delivery": "x",
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
            },
            REMOTE_ADDR=address,
        )

    statuses = [forge("203.0.113.7").status_code for _ in range(8)]
    assert statuses == [403] * 5 + [429] * 3
    # One row for the address, without the body; the rest counted on it.
    row = WebhookDelivery.objects.get(address="203.0.113.7")
    assert (row.repeats, row.payload, row.accepted) == (7, None, False)
    # Another address is neither throttled nor counted on the first's row.
    assert forge("198.51.100.1").status_code == 403
    assert WebhookDelivery.objects.count() == 2
    # A signed delivery from the throttled address waits for the window to pass.
    answer = insider_deliver(
        client, "sample-pkg", "release", insider_release_event("v1.0.0", "acme/sample-pkg"), address="203.0.113.7"
    )
    assert answer.status_code == 429
    assert not Deployment.objects.exists()


def test_behind_a_proxy_refusals_are_counted_per_client_not_per_proxy(client, edges_hooked, settings):
    settings.CLIENT_ADDRESS_HEADER = "X-Forwarded-For"
    settings.CLIENT_ADDRESS_PROXIES = 1
    settings.WEBHOOK_REFUSALS_PER_WINDOW = 2
    url = reverse("releases:github_webhook", args=["sample-pkg"])

    def forge(client_seen_by_proxy: str) -> int:
        return client.post(
            url,
            data=b"{}",
            content_type="application/json",
            headers={"X-GitHub-Event": "ping", "X-Forwarded-For": f"10.9.9.9, {client_seen_by_proxy}"},
            REMOTE_ADDR="127.0.0.1",  # the proxy
        ).status_code

    assert [forge("203.0.113.20") for _ in range(3)] == [401, 401, 429]
    # GitHub, behind the same proxy, is not locked out by the forger.
    assert forge("140.82.115.1") == 401
    assert set(WebhookDelivery.objects.values_list("address", flat=True)) == {"203.0.113.20", "140.82.115.1"}


def test_a_captured_delivery_replayed_again_and_again_fills_no_table(client, edges_hooked):
    body = json.dumps(insider_release_event("v1.0.0", "acme/sample-pkg")).encode()
    headers = {
        "X-GitHub-Event": "release",
        "X-GitHub-Delivery": "captured-1",
        "X-Hub-Signature-256": insider_sign(body),
    }
    url = reverse("releases:github_webhook", args=["sample-pkg"])

    answers = [
        client.post(url, data=body, content_type="application/json", headers=headers, REMOTE_ADDR="203.0.113.9")
        for _ in range(6)
    ]

    assert [a.status_code for a in answers] == [202] + [200] * 5
    assert WebhookDelivery.objects.filter(accepted=True).count() == 1
    replay = WebhookDelivery.objects.get(outcome=WebhookDelivery.Outcome.DUPLICATE)
    assert (replay.repeats, replay.payload) == (4, None)


# -- part 7 (checked): the audit trail against a database insider ---------------------


@pytest.mark.django_db(transaction=True)
def test_the_console_s_role_cannot_update_or_delete_audit_rows():
    make_history(3)
    role = "console_insider_edges"
    with insider_connection() as owner:
        owner.execute(f"DROP ROLE IF EXISTS {role}")
        owner.execute(f"CREATE ROLE {role} LOGIN")
        owner.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        try:
            with insider_connection(role) as app:
                for statement in (
                    "UPDATE releases_auditevent SET actor_name = 'mallory' WHERE id = 2",
                    "DELETE FROM releases_auditevent WHERE id = 3",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="audit events are append-only"):
                        app.execute(statement)
        finally:
            owner.execute(f"DROP OWNED BY {role}")
            owner.execute(f"DROP ROLE {role}")
    assert AuditEvent.objects.get(pk=2).actor_name != "mallory"
    assert AuditEvent.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_chain_rewritten_with_recomputed_hashes_is_named_by_audit_verify():
    make_history(5)
    with insider_connection() as insider:
        insider.execute("SET session_replication_role = replica")  # past the triggers, as a superuser can
        insider.execute("UPDATE releases_auditevent SET actor_name = 'someone-else' WHERE id = 2")
        previous = AuditEvent.objects.get(pk=1).hash
        for event in AuditEvent.objects.filter(pk__gte=2).order_by("id"):
            new_hash = chain_hash(previous, event_payload(event))
            insider.execute(
                "UPDATE releases_auditevent SET previous_hash = %s, hash = %s WHERE id = %s",
                [previous, new_hash, event.pk],
            )
            previous = new_hash
        insider.execute("UPDATE releases_auditchainhead SET last_hash = %s", [previous])

    result = manage("audit_verify")
    assert result.returncode == 1
    assert "audit chain broken at event #2: event #2 does not match its seal" in result.stderr
