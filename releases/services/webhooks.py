"""GitHub webhook deliveries: check, record, answer at once; the work is queued.

Every request is kept as a ``WebhookDelivery``, valid or not. Only a
delivery signed with the project's secret (``X-Hub-Signature-256``, HMAC
SHA-256 of the raw body, compared in constant time) is accepted, and an
accepted delivery id is processed once: GitHub's redeliveries, and replays,
get a 200 that does nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from packaging.utils import canonicalize_name

from releases.models import Deployment, Job, Project, Release, WebhookDelivery
from releases.selectors.lookups import environment_first_automatic
from releases.services.credentials import CredentialError, credential_reveal
from releases.services.deployments import deployment_request
from releases.services.jobs import job_create
from releases.services.lifecycle import transition
from releases.services.releases import release_at_ref
from releases.services.workflow_runs import workflow_run_from_webhook
from releases.validators import clean_ref, clean_version, version_from_tag

State = WebhookDelivery.State
Outcome = WebhookDelivery.Outcome
KEPT_HEADERS = ("user-agent", "content-type", "content-length", "x-github-", "x-hub-signature")


@dataclass(frozen=True)
class Request:
    """What the endpoint read from the HTTP request."""

    project_name: str
    headers: Mapping[str, str]
    content_type: str
    body: bytes
    body_size: int
    too_large: bool


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    # Reference: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", errors="replace"))


def _text(value: str, limit: int) -> str:
    # PostgreSQL text and jsonb cannot hold NUL.
    return value.replace("\x00", "")[:limit]


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(KEPT_HEADERS) and len(kept) < 30:
            kept[_text(name, 100)] = _text(str(value), 300)
    return kept


def tag_version(tag: str) -> str:
    """The normalized PEP 440 version a tag names (``v1.2.0`` → ``1.2.0``)."""
    return clean_version(version_from_tag(tag))


def webhook_receive(request: Request) -> WebhookDelivery:
    """Decide the answer to one delivery, record it, and queue its work."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    project = Project.objects.filter(name=canonicalize_name(request.project_name[:200])).first()
    delivery = WebhookDelivery(
        project=project,
        project_name=_text(request.project_name, 200),
        delivery_id=_text(headers.get("x-github-delivery", ""), 100),
        event=_text(headers.get("x-github-event", ""), 100),
        headers=kept_headers(request.headers),
        body_size=request.body_size,
    )
    refusal = _refusal(request, project, headers)
    if refusal is not None:
        delivery.status_code, delivery.reason = refusal
        delivery.outcome = Outcome.REFUSED
        delivery.save()
        return delivery
    assert project is not None
    if (
        delivery.delivery_id
        and WebhookDelivery.objects.filter(delivery_id=delivery.delivery_id, accepted=True).exists()
    ):
        return _duplicate(delivery)
    try:
        payload = _without_nul(json.loads(request.body))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested beyond reason
        payload = None
    if not isinstance(payload, dict):
        delivery.status_code, delivery.outcome = 400, Outcome.REFUSED
        delivery.reason = "The body is not a JSON object."
        delivery.save()
        return delivery
    action = payload.get("action")
    delivery.action = _text(action, 100) if isinstance(action, str) else ""
    delivery.status_code, outcome, delivery.reason = _decide(project, delivery.event, delivery.action, payload)
    if outcome == QUEUE:
        delivery.state, delivery.outcome = State.QUEUED, Outcome.NONE
    else:
        delivery.outcome = outcome
    delivery.accepted = delivery.outcome != Outcome.REFUSED
    if delivery.accepted:
        delivery.payload = payload
    try:
        with transaction.atomic():
            delivery.save()
            if delivery.state == State.QUEUED:
                # Its work is a job like any other: sent after commit, and
                # found again by the reaper if the message is lost.
                job_create(kind=Job.Kind.WEBHOOK, delivery=delivery)
    except IntegrityError:
        # The same delivery id accepted a moment ago by another request.
        delivery.pk = None
        delivery.accepted = False
        delivery.payload = None
        return _duplicate(delivery)
    return delivery


def _refusal(request: Request, project: Project | None, headers: dict[str, str]) -> tuple[int, str] | None:
    if project is None:
        return 404, f"There is no project named {request.project_name[:100]!r}."
    if request.too_large:
        return 413, f"The body is larger than the {settings.WEBHOOK_MAX_BYTES} bytes allowed."
    if request.content_type != "application/json":
        return 415, "Set the webhook's content type to application/json."
    signature = headers.get("x-hub-signature-256", "")
    if not signature:
        return 401, "The X-Hub-Signature-256 header is missing: set a secret on the webhook."
    if project.webhook_secret is None:
        return 403, f"Project {project.name} has no webhook secret; set one in the console and on GitHub."
    try:
        secret = credential_reveal(project.webhook_secret)
    except CredentialError:
        return 403, "The project's webhook secret cannot be decrypted; set it again."
    if not signature_valid(secret, request.body, signature):
        return 403, "The signature does not match the body: the secrets on GitHub and in the console differ."
    if not headers.get("x-github-delivery"):
        return 400, "The X-GitHub-Delivery header is missing; it is what makes a redelivery harmless."
    return None


def _duplicate(delivery: WebhookDelivery) -> WebhookDelivery:
    delivery.status_code, delivery.state, delivery.outcome = 200, State.FINISHED, Outcome.DUPLICATE
    delivery.reason = "This delivery was processed before; nothing was done again."
    delivery.save()
    return delivery


# What _decide answers for a delivery whose work waits for its job.
QUEUE = "queue"


def _decide(project: Project, event: str, action: str, payload: dict[str, Any]) -> tuple[int, str, str]:
    if event == "ping":
        return 200, Outcome.DONE, ""
    if event == "workflow_run":
        return 202, QUEUE, ""
    if event != "release":
        return 200, Outcome.IGNORED, f"The console does not use {event or 'unnamed'!r} events."
    wanted = {"published", "created"} if project.release_on_created else {"published"}
    if action not in wanted:
        return 200, Outcome.IGNORED, f"Release action {action!r} starts nothing."
    release = payload.get("release")
    tag = release.get("tag_name") if isinstance(release, dict) else None
    if not isinstance(tag, str) or not tag:
        return 400, Outcome.REFUSED, "The release event has no release.tag_name."
    if not fnmatchcase(tag, project.tag_pattern):
        return (
            200,
            Outcome.IGNORED,
            f"The tag {tag[:100]!r} does not match the project's pattern {project.tag_pattern!r}.",
        )
    try:
        clean_ref(tag)
        tag_version(tag)
    except ValidationError as exc:
        return 422, Outcome.REFUSED, " ".join(exc.messages)
    return 202, QUEUE, ""


def webhook_process(delivery: WebhookDelivery) -> None:
    """Do the queued work of an accepted delivery, once: a release tag
    starts a release, a workflow run updates the run it names. Work the
    rules refuse ends the delivery as failed, with why."""
    current = WebhookDelivery.objects.select_related("project").get(pk=delivery.pk)
    if current.state != State.QUEUED or current.project is None or not isinstance(current.payload, dict):
        return
    outcome, reason, release = Outcome.DONE, "", None
    try:
        with transaction.atomic():
            if current.event == "release":
                release = release_publish_from_tag(current.project, str(current.payload["release"]["tag_name"]))
            elif current.event == "workflow_run" and not workflow_run_from_webhook(current.payload):
                outcome, reason = Outcome.IGNORED, "No deployment follows this run."
    except ValidationError as exc:
        outcome, reason = Outcome.FAILED, " ".join(exc.messages)[:2000]
    transition(
        current, State.FINISHED, outcome=outcome, reason=reason, changes={"release": release}, expect=[State.QUEUED]
    )


def webhook_fail(delivery: WebhookDelivery, reason: str) -> None:
    """The delivery's job failed (its worker, not the rules): say so on the delivery."""
    transition(delivery, State.FINISHED, outcome=Outcome.FAILED, reason=reason, expect=[State.QUEUED])


def release_publish_from_tag(project: Project, tag: str) -> Release:
    """Create the release at ``tag`` (built by its job) and ask for it on the
    first environment; the build's success starts the deployment."""
    release, _ = release_at_ref(project=project, version=tag_version(tag), ref=tag, actor=None)
    environment = environment_first_automatic()
    if environment is None:
        raise ValidationError("There is no environment to publish to first (test-pypi, or one without approvals).")
    ended_badly = (Deployment.Outcome.FAILED, Deployment.Outcome.CANCELLED, Deployment.Outcome.EXPIRED)
    if not release.deployments.filter(environment=environment).exclude(outcome__in=ended_badly).exists():
        deployment_request(release=release, environment=environment, actor=None)
    return release
