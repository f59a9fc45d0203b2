"""Mail to people about what waits for them. Sent once the change that
prompted it is committed; a mail server that fails loses no request."""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from releases.models import APPROVE_PERMISSION, Deployment

logger = logging.getLogger(__name__)


def approvers_for(deployment: Deployment) -> list[User]:
    """Active people who may approve ``deployment`` (never its requester)."""
    candidates = User.objects.filter(is_active=True).order_by("username")
    if deployment.requested_by_id is not None:
        candidates = candidates.exclude(pk=deployment.requested_by_id)
    return [user for user in candidates if user.has_perm(APPROVE_PERMISSION)]


def approvals_notify(deployment: Deployment) -> None:
    """Email the approvers once the request is committed."""
    deployment_id = deployment.pk
    transaction.on_commit(lambda: _send_request_mail(deployment_id))


def _send_request_mail(deployment_id: int) -> None:
    deployment = Deployment.objects.select_related("release__project", "environment", "requested_by").get(
        pk=deployment_id
    )
    recipients = [user.email for user in approvers_for(deployment) if user.email]
    if not recipients:
        return
    requester = deployment.requested_by.get_username() if deployment.requested_by else "the system"
    link = settings.CONSOLE_URL.rstrip("/") + reverse("releases:approval", args=[deployment.pk])
    files = "\n".join(f"  {a.filename}  sha256:{a.sha256}" for a in deployment.release.artifacts.all())
    body = (
        f"{requester} asks to publish {deployment.release} to {deployment.environment.title}.\n\n"
        f"It needs {deployment.required_approvals} approval(s) by someone other than {requester}.\n"
        f"Files:\n{files or '  (still building)'}\n\n"
        f"Review and decide: {link}\n"
    )
    if deployment.expires_at is not None:
        body += f"The request expires at {deployment.expires_at:%Y-%m-%d %H:%M} UTC.\n"
    # One message per person, so that no approver sees the others' addresses.
    for recipient in recipients:
        try:
            send_mail(
                f"Approval needed: {deployment.release} to {deployment.environment.title}", body, None, [recipient]
            )
        except (OSError, smtplib.SMTPException):
            # The request stands and is listed under "Awaiting my approval"; the mail is a courtesy.
            logger.warning("could not mail %s about deployment %s", recipient, deployment_id, exc_info=True)


def protection_notify(environment_name: str, lines: list[str], what: str) -> None:
    """Tell every approver, once committed, that an environment's protection
    was ``what``, with each value before and after."""
    transaction.on_commit(lambda: _send_protection_mail(environment_name, lines, what))


def _send_protection_mail(environment_name: str, lines: list[str], what: str) -> None:
    people = [user for user in User.objects.filter(is_active=True).order_by("username") if user.email]
    recipients = [user.email for user in people if user.has_perm(APPROVE_PERMISSION)]
    link = settings.CONSOLE_URL.rstrip("/") + reverse("releases:change_requests")
    body = (
        f"The protection of the environment {environment_name} was {what}:\n\n"
        + "\n".join(f"  {line}" for line in lines)
        + f"\n\nChange requests and their decisions: {link}\n"
    )
    for recipient in recipients:
        try:
            send_mail(f"Protection of {environment_name}: {what[:60]}", body, None, [recipient])
        except (OSError, smtplib.SMTPException):
            logger.warning("could not mail %s about environment %s", recipient, environment_name, exc_info=True)
