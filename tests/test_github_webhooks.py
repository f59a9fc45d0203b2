"""The GitHub webhook endpoint: only signed, new, well-formed deliveries do
anything; every one is recorded; none gets a 5xx."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releases.models import Deployment, Environment, Job, Project, Release, WebhookDelivery, WorkflowRun
from releases.services.projects import environment_create, project_set_github
from releases.services.webhooks import webhook_process
from tests.conftest import served, wait_built, wait_final, wait_for
from tests.support.console import DeploymentFactory, ReleaseFactory
from tests.support.insider import verify_session
from tests.support.sample import SampleRepo

SECRET = "It's a Secret to Everybody"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def release_event(tag: str, action: str = "published", repository: str = "acme/sample-pkg") -> dict[str, Any]:
    """Shaped like GitHub's documented ``release`` event payload."""
    owner, name = repository.split("/")
    return {
        "action": action,
        "release": {
            "url": f"https://api.github.com/repos/{repository}/releases/1",
            "html_url": f"https://github.com/{repository}/releases/tag/{tag}",
            "id": 1,
            "node_id": "MDc6UmVsZWFzZTE=",
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "draft": False,
            "prerelease": False,
            "created_at": "2026-11-24T10:00:00Z",
            "published_at": "2026-11-24T10:00:05Z",
            "author": {"login": "octocat", "id": 1, "type": "User"},
            "assets": [],
            "tarball_url": f"https://api.github.com/repos/{repository}/tarball/{tag}",
            "zipball_url": f"https://api.github.com/repos/{repository}/zipball/{tag}",
            "body": "Notes",
        },
        "repository": {"id": 1296269, "name": name, "full_name": repository, "owner": {"login": owner}},
        "sender": {"login": "octocat", "id": 1, "type": "User"},
    }


def workflow_run_event(run_id: int, conclusion: str = "success") -> dict[str, Any]:
    """Shaped like GitHub's documented ``workflow_run`` event payload."""
    return {
        "action": "completed",
        "workflow_run": {
            "id": run_id,
            "name": "Publish",
            "event": "workflow_dispatch",
            "status": "completed",
            "conclusion": conclusion,
            "html_url": f"https://github.com/acme/sample-pkg/actions/runs/{run_id}",
            "head_sha": "a" * 40,
        },
        "workflow": {"id": 161335, "path": ".github/workflows/publish.yml"},
        "repository": {"full_name": "acme/sample-pkg"},
        "sender": {"login": "octocat"},
    }


def post(
    client: Client,
    body: bytes,
    *,
    event: str = "release",
    delivery: str | None = None,
    signature: str | None = "sign",
    content_type: str = "application/json",
    project: str = "sample-pkg",
):
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()) if delivery is None else delivery}
    if signature == "sign":
        headers["X-Hub-Signature-256"] = sign(body)
    elif signature is not None:
        headers["X-Hub-Signature-256"] = signature
    url = reverse("releases:github_webhook", args=[project])
    return client.post(url, data=body, content_type=content_type, headers=headers)


def process_queued() -> None:
    """What the worker does with the deliveries that were queued."""
    for delivery in WebhookDelivery.objects.filter(state=WebhookDelivery.State.QUEUED):
        webhook_process(delivery)


@pytest.fixture
def hooked_project(project: Project) -> Project:
    return project_set_github(project, repository="acme/sample-pkg", webhook_secret=SECRET, actor=None)


@pytest.fixture
def first_environment(db) -> Environment:
    return environment_create(
        name="test-pypi",
        upload_url="http://127.0.0.1:9/up/",
        index_url="http://127.0.0.1:9/simple/",
        token="test-upload-token",
        actor=None,
    )


def test_a_signed_release_event_creates_the_release_and_queues_its_publication(
    client, hooked_project, first_environment, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(client, json.dumps(release_event("v1.2.0")).encode())

    assert response.status_code == 202
    delivery = WebhookDelivery.objects.get()
    assert delivery.accepted and delivery.state == WebhookDelivery.State.QUEUED
    assert (delivery.event, delivery.action) == ("release", "published")
    assert "X-Hub-Signature-256" in delivery.headers
    # The work is a job: its id alone goes to the workers, and nothing was
    # done in the request itself.
    assert len(callbacks) == 1
    assert list(Job.objects.values_list("kind", "delivery", "release")) == [(Job.Kind.WEBHOOK, delivery.pk, None)]

    process_queued()

    release = Release.objects.get(project=hooked_project)
    assert (release.version, release.ref) == ("1.2.0", "v1.2.0")
    assert Job.objects.filter(release=release, kind=Job.Kind.BUILD).count() == 1
    deployment = Deployment.objects.get(release=release)
    assert deployment.environment == first_environment and deployment.state == Deployment.State.QUEUED
    delivery.refresh_from_db()
    assert delivery.outcome == WebhookDelivery.Outcome.DONE and delivery.release == release


def test_a_ping_is_answered_and_recorded(client, hooked_project):
    response = post(client, json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode(), event="ping")
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().outcome == WebhookDelivery.Outcome.DONE


def body_of(kind: str) -> bytes:
    return json.dumps(release_event("v1.2.0")).encode() if kind == "release" else kind.encode()


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad signature", 403),
        ("no signature header", 401),
        ("unknown event", 200),
        ("tag not matching the pattern", 200),
        ("created action when only published starts releases", 200),
        ("oversized body", 413),
        ("malformed JSON", 400),
        ("wrong content type", 415),
        ("unknown project", 404),
        ("tag that is not a version", 422),
        ("no delivery id", 400),
        ("project without a webhook secret", 403),
    ],
)
def test_webhook_matrix_no_invalid_delivery_starts_anything(client, hooked_project, first_environment, case, status):
    good = json.dumps(release_event("v1.2.0")).encode()
    if case == "bad signature":
        response = post(client, good, signature=sign(good, "another secret"))
    elif case == "no signature header":
        response = post(client, good, signature=None)
    elif case == "unknown event":
        response = post(client, json.dumps({"action": "opened", "issue": {"id": 1}}).encode(), event="issues")
    elif case == "tag not matching the pattern":
        response = post(client, json.dumps(release_event("release-1.2.0")).encode())
    elif case == "created action when only published starts releases":
        response = post(client, json.dumps(release_event("v1.2.0", action="created")).encode())
    elif case == "oversized body":
        padded = release_event("v1.2.0")
        padded["release"]["body"] = "x" * (1024 * 1024)
        response = post(client, json.dumps(padded).encode())
    elif case == "malformed JSON":
        response = post(client, good[:-5])
    elif case == "wrong content type":
        response = post(client, good, content_type="application/x-www-form-urlencoded")
    elif case == "unknown project":
        response = post(client, good, project="no-such-project")
    elif case == "project without a webhook secret":
        Project.objects.filter(pk=hooked_project.pk).update(webhook_secret=None)
        response = post(client, good)
    elif case == "no delivery id":
        response = post(client, good, delivery="")
    else:
        response = post(client, json.dumps(release_event("v1.2.0.final-not")).encode())

    assert response.status_code == status
    assert response.json()["detail"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status_code == status
    assert delivery.outcome in (WebhookDelivery.Outcome.REFUSED, WebhookDelivery.Outcome.IGNORED)
    if status >= 400:
        assert not delivery.accepted and delivery.payload is None
    process_queued()
    assert not Release.objects.exists()
    assert not Job.objects.exists()


def test_a_replayed_delivery_is_answered_200_and_does_nothing(client, hooked_project, first_environment):
    body = json.dumps(release_event("v1.2.0")).encode()
    first = post(client, body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    process_queued()
    again = post(client, body, delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    process_queued()

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["outcome"] == WebhookDelivery.Outcome.DUPLICATE
    assert Release.objects.count() == 1
    assert Job.objects.filter(kind=Job.Kind.BUILD).count() == 1
    assert Job.objects.filter(kind=Job.Kind.WEBHOOK).count() == 1  # the first delivery's only
    assert Deployment.objects.count() == 1


def test_a_refused_delivery_does_not_burn_its_id(client, hooked_project, first_environment):
    body = json.dumps(release_event("v1.2.0")).encode()
    post(client, body, delivery="same-id", signature="sha256=" + "0" * 64)
    response = post(client, body, delivery="same-id")
    assert response.status_code == 202


def test_release_created_starts_a_release_when_the_project_says_so(client, hooked_project, first_environment):
    Project.objects.filter(pk=hooked_project.pk).update(release_on_created=True)
    response = post(client, json.dumps(release_event("v1.2.0", action="created")).encode())
    process_queued()
    assert response.status_code == 202
    assert Release.objects.get().version == "1.2.0"


def test_a_get_is_refused(client, hooked_project):
    response = client.get(reverse("releases:github_webhook", args=["sample-pkg"]))
    assert response.status_code == 405
    assert not WebhookDelivery.objects.exists()


def test_a_workflow_run_event_updates_the_tracked_run(client, hooked_project, first_environment):
    release = ReleaseFactory(project=hooked_project, version="1.0.0")
    deployment = DeploymentFactory(
        release=release, environment=first_environment, state=Deployment.State.UPLOADING, outcome=""
    )
    run = WorkflowRun.objects.create(
        deployment=deployment,
        repository="acme/sample-pkg",
        workflow_file="publish.yml",
        dispatched_at=deployment.created_at,
        run_id=30433642,
        status="in_progress",
    )

    response = post(client, json.dumps(workflow_run_event(30433642, "failure")).encode(), event="workflow_run")
    process_queued()

    assert response.status_code == 202
    run.refresh_from_db()
    assert (run.status, run.conclusion) == ("completed", "failure")
    assert WebhookDelivery.objects.get().outcome == WebhookDelivery.Outcome.DONE


events = st.sampled_from(["release", "ping", "workflow_run", "push", "", "RELEASE", "release\x00"]) | st.text(
    max_size=20
)
tags = st.sampled_from(["v1.2.0", "v1.2", "v01.2.0", "1.2.0", "v1.2.0-rc.1", "v*.*.*", "v1..2", "-v1"]) | st.text(
    max_size=30
)
json_bodies = st.builds(
    lambda tag, action, extra: json.dumps({**release_event(tag, action), **extra}).encode(),
    tags,
    st.sampled_from(["published", "created", "deleted", ""]),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.none(), max_size=3),
)
bodies = json_bodies | st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
signatures = st.sampled_from(["valid", "none", "wrong"]) | st.text(max_size=80)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, event=events, signature=signatures, content_type=content_types, delivery=st.text(max_size=40))
def test_fuzzed_deliveries_never_5xx_and_start_jobs_only_when_signed(
    hooked_project, first_environment, body, event, signature, content_type, delivery
):
    client = Client()
    jobs_before = Job.objects.count()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signature == "valid":
        headers["X-Hub-Signature-256"] = sign(body)
    elif signature == "wrong":
        headers["X-Hub-Signature-256"] = sign(body, "not the secret")
    elif signature != "none":
        headers["X-Hub-Signature-256"] = signature
    # An HTTP server never passes on a header value with a line break.
    headers = {k: v for k, v in headers.items() if "\n" not in v and "\r" not in v}
    url = reverse("releases:github_webhook", args=["sample-pkg"])

    response = client.post(url, data=body, content_type=content_type, headers=headers)

    assert response.status_code < 500
    process_queued()
    validly_signed = signature == "valid" and content_type.startswith("application/json")
    if not validly_signed:
        assert Job.objects.count() == jobs_before
        assert not WebhookDelivery.objects.filter(pk=response.json()["delivery"], accepted=True).exists()


def test_a_signed_release_webhook_for_v1_2_0_ends_built_published_and_verified(
    worker, sample_repo: SampleRepo, project, sandbox, devpi, index_account
):
    sample_repo.commit_version("1.2.0", tag="v1.2.0")
    project_set_github(project, repository="acme/sample-pkg", webhook_secret=SECRET, actor=None)

    response = post(Client(), json.dumps(release_event("v1.2.0")).encode())

    assert response.status_code == 202
    release = wait_for(lambda: Release.objects.filter(project=project, version="1.2.0").first())
    assert wait_built(release).is_built  # type: ignore[arg-type]
    deployment = wait_for(lambda: Deployment.objects.filter(release=release).first())
    deployment = wait_final(deployment)  # type: ignore[arg-type]
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    assert deployment.environment.name == "test-pypi"
    # Nobody clicked: the service account asked, and can never approve.
    assert deployment.requested_by is not None and deployment.requested_by.username == "github-webhook"
    artifacts = {a.filename: a.sha256 for a in release.artifacts.all()}  # type: ignore[union-attr]
    assert set(artifacts) == {"sample_pkg-1.2.0.tar.gz", "sample_pkg-1.2.0-py3-none-any.whl"}
    assert served(deployment) == artifacts
    for filename in artifacts:
        assert devpi.stored_count(index_account, filename) == 1
    assert WebhookDelivery.objects.get().outcome == WebhookDelivery.Outcome.DONE


def test_project_github_command_stores_the_secrets_encrypted(project, tmp_path, capsys):
    token_file = tmp_path / "token"
    token_file.write_text("github_pat_" + "A" * 40 + "\n")
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)

    call_command(
        "project_github",
        project.name,
        "--repository",
        "acme/sample-pkg",
        "--mode",
        "workflow",
        "--inputs",
        '{"python": "3.12"}',
        "--token-file",
        str(token_file),
        "--webhook-secret-file",
        str(secret_file),
    )

    project.refresh_from_db()
    assert project.publish_mode == Project.PublishMode.WORKFLOW
    assert project.workflow_inputs == {"python": "3.12"}
    assert project.github_credential.last_four == "AAAA"
    assert b"github_pat_" not in bytes(project.github_credential.encrypted_value)
    assert "/webhooks/github/sample-pkg/" in capsys.readouterr().out
    body = json.dumps({"zen": "x"}).encode()
    assert post(Client(), body, event="ping").status_code == 200


def test_admins_see_deliveries_but_cannot_change_them(client, admin_user, hooked_project):
    post(client, b"{}", event="ping", signature="sha256=" + "0" * 64)
    client.force_login(admin_user)
    verify_session(client, admin_user)
    delivery = WebhookDelivery.objects.get()

    listing = client.get(reverse("admin:releases_webhookdelivery_changelist"))
    detail = client.get(reverse("admin:releases_webhookdelivery_change", args=[delivery.pk]))

    assert listing.status_code == 200 and b"ping" in listing.content
    assert detail.status_code == 200 and b"signature does not match" in detail.content
    assert client.get(reverse("admin:releases_webhookdelivery_add")).status_code == 403
    assert client.post(reverse("admin:releases_webhookdelivery_delete", args=[delivery.pk])).status_code == 403
