"""GitHub webhook deliveries: check, record, answer at once; the work is queued.

Only a delivery signed with the project's secret (``X-Hub-Signature-256``,
HMAC SHA-256 of the raw body, compared in constant time) and naming the
project's own repository (``repository.full_name``, compared without case as
GitHub does) is accepted, and an accepted delivery id is processed once:
GitHub's redeliveries, and replays, get a 200 that does nothing.

Accepted deliveries are stored whole. Refused ones (and replays of accepted
ones) are stored once per address and WEBHOOK_REFUSAL_WINDOW, without their
body, and later ones from that address only counted on that row; past
WEBHOOK_REFUSALS_PER_WINDOW refusals the address gets a 429 before anything
it sent is looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from packaging.utils import canonicalize_name

from releases.models import Deployment, Job, Project, Release, WebhookDelivery
from releases.selectors.lookups import environment_first_automatic
from releases.services.credentials import CredentialError, credential_reveal
from releases.services.deployments import deployment_request
from releases.services.jobs import job_create
from releases.services.lifecycle import transition
from releases.services.releases import release_at_ref
from releases.services.roles import service_account
from releases.services.workflow_runs import RUN_LATE, RUN_UNTRACKED, workflow_path, workflow_run_from_webhook
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
    address: str = ""


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
    """Decide the answer to one delivery, record it, and queue its work.

    The answer is a WebhookDelivery; one whose ``pk`` is None was only
    counted (on the address's refused delivery of the window), not stored.
    """
    headers = {name.lower(): value for name, value in request.headers.items()}
    address = _text(request.address, 64)
    delivery = WebhookDelivery(
        project_name=_text(request.project_name, 200),
        delivery_id=_text(headers.get("x-github-delivery", ""), 100),
        event=_text(headers.get("x-github-event", ""), 100),
        headers=kept_headers(request.headers),
        body_size=request.body_size,
        address=address,
    )
    if _refusals_counted(address) >= settings.WEBHOOK_REFUSALS_PER_WINDOW:
        delivery.status_code, delivery.outcome = 429, Outcome.REFUSED
        delivery.reason = (
            f"Too many refused deliveries from {address or 'this address'}; "
            f"try again in {settings.WEBHOOK_REFUSAL_WINDOW} s."
        )
        return _refused(delivery)
    project = Project.objects.filter(name=canonicalize_name(request.project_name[:200])).first()
    delivery.project = project
    refusal = _refusal(request, project, headers)
    if refusal is not None:
        delivery.status_code, delivery.reason = refusal
        delivery.outcome = Outcome.REFUSED
        return _refused(delivery)
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
        return _refused(delivery)
    action = payload.get("action")
    delivery.action = _text(action, 100) if isinstance(action, str) else ""
    delivery.status_code, outcome, delivery.reason = _decide(project, delivery.event, delivery.action, payload)
    if outcome == Outcome.REFUSED:
        delivery.outcome = outcome
        return _refused(delivery)
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


def _open_row(address: str, outcome: str) -> WebhookDelivery | None:
    """The address's stored delivery with ``outcome`` of the current window, if any."""
    since = timezone.now() - timedelta(seconds=settings.WEBHOOK_REFUSAL_WINDOW)
    return (
        WebhookDelivery.objects.filter(outcome=outcome, address=address, received_at__gte=since)
        .order_by("-received_at", "-id")
        .first()
    )


def _refusals_counted(address: str) -> int:
    row = _open_row(address, Outcome.REFUSED)
    return 0 if row is None else 1 + row.repeats


def _refused(delivery: WebhookDelivery) -> WebhookDelivery:
    """Store a refused delivery, the first of its address's window; count a later one on that first."""
    return _stored_once_per_window(delivery)


def _stored_once_per_window(delivery: WebhookDelivery) -> WebhookDelivery:
    """Store ``delivery`` (a refusal or a replay, never accepted), unless its
    address has one with the same outcome in the window: then count it there."""
    with transaction.atomic():
        row = _open_row(delivery.address, delivery.outcome)
        if row is None:
            delivery.save()
            return delivery
        WebhookDelivery.objects.filter(pk=row.pk).update(repeats=F("repeats") + 1)
    delivery.reason = f"{delivery.reason} (Counted on delivery #{row.pk}, not stored.)"
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
    # A captured delivery replayed again and again fills no table either.
    return _stored_once_per_window(delivery)


# What _decide answers for a delivery whose work waits for its job.
QUEUE = "queue"


def repository_problem(project: Project, event: str, payload: dict[str, Any]) -> str | None:
    """Why a signed delivery is not about the project's own repository, or None.

    An event that starts or changes something (a release, a workflow run)
    must name the project's repository; any other may name none (a ping
    from an organization's hook) and does nothing, but may not name another.
    A secret shared between two repositories, or a delivery replayed from
    another one, stops here."""
    # Reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads (repository.full_name)
    repository = payload.get("repository")
    full_name = repository.get("full_name") if isinstance(repository, dict) else None
    if full_name is None and event not in ("release", "workflow_run"):
        return None
    if not project.github_repository:
        return f"Project {project.name} names no GitHub repository, so no delivery can be bound to it; set one."
    if not isinstance(full_name, str) or full_name.lower() != project.github_repository.lower():
        named = full_name[:200] if isinstance(full_name, str) else "no repository"
        return f"The delivery is about {named!r}, not {project.name}'s repository {project.github_repository!r}."
    return None


def _decide(project: Project, event: str, action: str, payload: dict[str, Any]) -> tuple[int, str, str]:
    problem = repository_problem(project, event, payload)
    if problem is not None:
        return 422, Outcome.REFUSED, problem
    if event == "ping":
        return 200, Outcome.DONE, ""
    if event == "workflow_run":
        path = workflow_path(payload)
        if path != f".github/workflows/{project.workflow_file}":
            return (
                200,
                Outcome.IGNORED,
                f"The run is of {str(path)[:200]!r}, not {project.name}'s workflow {project.workflow_file!r}.",
            )
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
            elif current.event == "workflow_run":
                applied = workflow_run_from_webhook(current.project, current.payload)
                if applied == RUN_UNTRACKED:
                    outcome, reason = Outcome.IGNORED, "No deployment of this project follows this run."
                elif applied == RUN_LATE:
                    outcome = Outcome.IGNORED
                    reason = "The event would move the run backwards (it arrived late); ignored and counted."
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
    # Asked for by the service account: a person on record who can never approve.
    requester = service_account()
    release, _ = release_at_ref(project=project, version=tag_version(tag), ref=tag, actor=requester)
    environment = environment_first_automatic()
    if environment is None:
        raise ValidationError("There is no environment to publish to first (test-pypi, or one without approvals).")
    ended_badly = (Deployment.Outcome.FAILED, Deployment.Outcome.CANCELLED, Deployment.Outcome.EXPIRED)
    if not release.deployments.filter(environment=environment).exclude(outcome__in=ended_badly).exists():
        deployment_request(release=release, environment=environment, actor=requester)
    return release
