"""Changes that one administrator asks for and another decides
(DESIGN.md principle 10): lowering an environment's protection, giving a
person a role, changing another person's account, resetting their password
or second factor.

A request is filed here with each field's value before and after, audited,
and mailed to the other administrators; ``change_decisions`` approves,
refuses or cancels it, and applies it. ``change_eligibility`` is the one
place that says who may decide: the page offers the buttons exactly when it
returns nothing, and the decision refuses with the same sentences.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse

from releases.actors import Actor, person
from releases.models import DECIDE_CHANGE_PERMISSION, AuditAction, ChangeRequest
from releases.services.audit import audit_record

logger = logging.getLogger(__name__)
Kind = ChangeRequest.Kind


@dataclass(frozen=True)
class ChangeBlocker:
    code: str
    message: str


def can_decide_changes(user: Actor) -> bool:
    return isinstance(user, User) and user.is_active and user.has_perm(DECIDE_CHANGE_PERMISSION)


def change_request_file(
    *,
    kind: str,
    target_type: str,
    target_id: int,
    target_name: str,
    changes: dict[str, Any],
    values: dict[str, Any],
    actor: Actor,
    comment: str = "",
) -> ChangeRequest:
    """Write a pending request, audit it with the values before and after,
    and mail the administrators who may decide it (once committed)."""
    try:
        with transaction.atomic():
            change = ChangeRequest.objects.create(
                kind=kind,
                target_type=target_type,
                target_id=target_id,
                target_name=target_name,
                changes=changes,
                values=values,
                requested_by=person(actor),
                comment=comment.strip()[:2000],
            )
            audit_record(
                actor=actor,
                action=AuditAction.CHANGE_REQUESTED,
                target=change,
                data={"kind": kind, "target": f"{target_type}:{target_name}", "changes": changes},
            )
    except IntegrityError:
        raise ValidationError(
            f"A change of this kind to {target_name} already waits for a second administrator; "
            "decide or cancel that one first."
        ) from None
    change_id = change.pk
    transaction.on_commit(lambda: _send_request_mail(change_id))
    return change


def change_eligibility(change: ChangeRequest, user: User, *, second_factor_verified: bool) -> list[ChangeBlocker]:
    """Why ``user`` may not approve or refuse ``change`` now; empty when they may."""
    blockers = []
    if not can_decide_changes(user):
        blockers.append(ChangeBlocker("permission", f"{user.get_username()} may not decide change requests."))
    if change.requested_by_id == user.pk:
        blockers.append(ChangeBlocker("requester", "You asked for this change; another administrator must decide it."))
    if change.target_type == "user" and change.target_id == user.pk:
        blockers.append(ChangeBlocker("subject", "This change is about you; another administrator must decide it."))
    if not change.is_pending:
        blockers.append(ChangeBlocker("closed", f"This request is {change.label.lower()}; it takes no decision."))
    if not second_factor_verified:
        blockers.append(
            ChangeBlocker("second_factor", "Deciding a change request needs a session verified with a second factor.")
        )
    return blockers


def change_describe(change: ChangeRequest) -> list[str]:
    """One line per field: its value before and after (as the audit trail keeps them)."""
    lines = []
    for field, value in change.changes.items():
        if isinstance(value, dict) and "before" in value:
            lines.append(f"{field}: {value['before']!r} → {value['after']!r}")
        else:
            lines.append(f"{field}: {value!r}")
    return lines


def change_deciders(change: ChangeRequest) -> list[User]:
    """Active administrators who may decide ``change`` (never its requester, nor its subject)."""
    candidates = User.objects.filter(is_active=True).order_by("username")
    if change.requested_by_id is not None:
        candidates = candidates.exclude(pk=change.requested_by_id)
    if change.target_type == "user":
        candidates = candidates.exclude(pk=change.target_id)
    return [user for user in candidates if user.has_perm(DECIDE_CHANGE_PERMISSION)]


def _send_request_mail(change_id: int) -> None:
    change = ChangeRequest.objects.select_related("requested_by").get(pk=change_id)
    requester = change.requested_by.get_username() if change.requested_by else "the server"
    link = settings.CONSOLE_URL.rstrip("/") + reverse("releases:change_requests")
    body = (
        f"{requester} asks: {change.get_kind_display().lower()} ({change.target_name}).\n\n"
        + "\n".join(f"  {line}" for line in change_describe(change))
        + f"\n\nIt takes effect only once another administrator approves it: {link}\n"
    )
    for user in change_deciders(change):
        if not user.email:
            continue
        try:
            send_mail(f"Change request #{change.pk}: {change.target_name}", body, None, [user.email])
        except (OSError, smtplib.SMTPException):
            logger.warning("could not mail %s about change request %s", user.pk, change_id, exc_info=True)
