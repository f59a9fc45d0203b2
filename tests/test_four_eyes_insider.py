"""Four eyes that hold against an insider: each attack made the way a person
would make it (the command line, the browser, a signed webhook, psql), and
refused or found."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from django.contrib.auth.models import Group, User
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
    Deployment,
    Environment,
    Project,
    WebhookDelivery,
    WorkflowRun,
)
from releases.services.approvals import ApprovalRefused, approval_give, approvals_problem, can_approve
from releases.services.audit import chain_hash, event_payload
from releases.services.projects import environment_create, project_set_github
from releases.services.roles import role_assign, service_account
from releases.services.webhooks import webhook_process
from tests.support.audit import insider_connection, make_history, manage
from tests.support.console import DeploymentFactory, EnvironmentFactory, ProjectFactory, ReleaseFactory
from tests.support.github_standin import GitHubStandIn
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
from tests.support.pypi_standin import PypiStandin

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
