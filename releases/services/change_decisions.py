"""Deciding change requests: another administrator approves (the change is
then written, by the service that owns it) or refuses; the requester may
cancel. Each decision is audited with the change's values before and after.
"""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from releases.actors import Actor
from releases.models import AuditAction, ChangeRequest
from releases.services.audit import audit_record
from releases.services.change_requests import change_eligibility
from releases.services.lifecycle import transition
from releases.services.people import person_apply_request
from releases.services.people_audit import people_acting
from releases.services.projects import environment_apply_request
from releases.services.roles import role_assign
from releases.services.second_factor import second_factor_reset

logger = logging.getLogger(__name__)
State = ChangeRequest.State
Outcome = ChangeRequest.Outcome
APPROVE = "approve"
REFUSE = "refuse"


class ChangeDecisionRefused(Exception):
    """A decision the rules do not allow; the refusal was audited, nothing changed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def change_decide(
    change: ChangeRequest, decider: User, decision: str, *, comment: str = "", second_factor_verified: bool
) -> ChangeRequest:
    """Approve or refuse ``change`` as ``decider``.

    1. Lock the request and check ``change_eligibility`` (not the requester,
       not the person it is about, an administrator, a verified session);
       a refusal is audited (committed) and raised.
    2. A refusal finishes it. An approval writes the change through the
       service that owns it; a change that no longer applies (the thing was
       changed meanwhile) finishes as failed, with why, and nothing changes.
    """
    if decision not in (APPROVE, REFUSE):
        raise ChangeDecisionRefused(f"{decision!r} is not a decision: approve or refuse.")
    comment = comment.strip()[:2000]
    with transaction.atomic():
        locked = ChangeRequest.objects.select_for_update().get(pk=change.pk)
        blockers = change_eligibility(locked, decider, second_factor_verified=second_factor_verified)
        if blockers:
            audit_record(
                actor=decider,
                action=AuditAction.CHANGE_DECISION_REFUSED,
                target=locked,
                data={"decision": decision, "reason": blockers[0].message},
            )
        else:
            _decide(locked, decider, decision, comment)
    if blockers:
        raise ChangeDecisionRefused(blockers[0].message)
    change.refresh_from_db()
    return change


def _decide(change: ChangeRequest, decider: User, decision: str, comment: str) -> None:
    stamp = {"decided_by": decider, "decided_at": timezone.now(), "comment": comment or change.comment}
    if decision == REFUSE:
        transition(
            change,
            State.FINISHED,
            outcome=Outcome.REFUSED,
            actor=decider,
            reason=f"Refused by {decider.get_username()}" + (f": {comment}" if comment else "."),
            changes=stamp,
        )
        return
    try:
        with transaction.atomic():
            _apply(change, decider)
            transition(
                change,
                State.FINISHED,
                outcome=Outcome.APPLIED,
                actor=decider,
                changes=stamp,
                data={"requested_by": change.requested_by.get_username() if change.requested_by else "system"},
            )
    except ValidationError as exc:
        transition(
            change,
            State.FINISHED,
            outcome=Outcome.FAILED,
            actor=decider,
            reason=" ".join(exc.messages),
            changes=stamp,
        )


def _apply(change: ChangeRequest, decider: User) -> None:
    kind = change.kind
    if kind == ChangeRequest.Kind.ENVIRONMENT:
        environment_apply_request(change, actor=decider)
        return
    user = User.objects.select_for_update().filter(pk=change.target_id).first()
    if user is None:
        raise ValidationError(f"{change.target_name} no longer exists.")
    if kind == ChangeRequest.Kind.ROLE:
        role_assign(user, str(change.values["role"]), actor=decider)
    elif kind == ChangeRequest.Kind.PERSON:
        person_apply_request(change, actor=decider)
    elif kind == ChangeRequest.Kind.PASSWORD_RESET:
        _password_reset(user, change, decider)
    elif kind == ChangeRequest.Kind.SECOND_FACTOR_RESET:
        reason = str(change.values.get("reason", "")) or f"change request #{change.pk}"
        second_factor_reset(user, actor=decider, reason=reason)
    else:
        raise ValidationError(f"{kind!r} is not a kind of change this console applies.")


def _password_reset(user: User, change: ChangeRequest, decider: User) -> None:
    """The password stops working (every session of theirs ends with it), and
    the person is mailed a link to choose a new one, which no administrator sees."""
    with people_acting(decider):
        user.set_unusable_password()
        user.save(update_fields=["password"])
    audit_record(
        actor=decider,
        action=AuditAction.PASSWORD_RESET,
        target=user,
        data={"user": user.get_username(), "change_request": change.pk, "mailed_to": user.email},
    )
    user_id = user.pk
    transaction.on_commit(lambda: _send_reset_mail(user_id))


def _send_reset_mail(user_id: int) -> None:
    user = User.objects.get(pk=user_id)
    if not user.email:
        logger.warning("password of user %s was reset; no email address to send the link to", user_id)
        return
    # Reference: https://docs.djangoproject.com/en/5.2/topics/auth/default/#django.contrib.auth.views.PasswordResetConfirmView
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    body = (
        f"Two administrators of the release console reset the password of your account {user.get_username()}.\n"
        f"Choose a new one here (the link works once): {settings.CONSOLE_URL.rstrip('/')}{path}\n"
    )
    try:
        send_mail("Your release console password was reset", body, None, [user.email])
    except (OSError, smtplib.SMTPException):
        logger.warning("could not mail user %s their password reset link", user_id, exc_info=True)


def change_cancel(change: ChangeRequest, *, actor: Actor) -> ChangeRequest:
    """The requester withdraws a pending request."""
    if not isinstance(actor, User) or change.requested_by_id != actor.pk:
        raise ChangeDecisionRefused("Only the administrator who asked can cancel this request.")
    moved = transition(
        change,
        State.FINISHED,
        outcome=Outcome.CANCELLED,
        actor=actor,
        reason=f"Cancelled by {actor.get_username()}.",
        expect=[State.PENDING],
    )
    if moved is None:
        raise ChangeDecisionRefused("This request is no longer pending.")
    return moved
