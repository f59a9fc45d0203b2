"""People: adding them, changing their accounts, their roles, passwords and
second factors, without one administrator being able to climb
(DESIGN.md principle 10).

- A person changes their own name, address and password (the password
  with the old one, ``password_change_own``) at once.
- Deactivating someone, or taking a role away, lowers what can be done:
  at once.
- Anything that could hand one person another's power (a role, another
  person's address or user name, activating an account, another person's
  password or second factor) is a change request that a second
  administrator approves (``change_decisions``), never the requester, never
  the person it is about.
- Superusers are made only on the server (``createsuperuser``); no page
  offers the flag, the groups or the permissions.

Every change is audited with the values before and after by
``people_audit``, whatever path made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from releases.actors import Actor, person
from releases.models import AuditAction, ChangeRequest
from releases.services.audit import audit_record
from releases.services.change_requests import change_request_file
from releases.services.people_audit import people_acting, roles_of
from releases.services.roles import ROLES, role_remove

# What a console administrator may change on a person's account.
PERSON_FIELDS = ("username", "email", "first_name", "last_name", "is_active")
# Of those, what may be changed on another person only with a second administrator.
GUARDED_FIELDS = ("username", "email")


@dataclass(frozen=True)
class PersonChange:
    user: User
    request: ChangeRequest | None


def person_create(*, username: str, email: str = "", password: str | None, actor: Actor) -> User:
    """A new person with no role (a role is a request of its own); audited by ``people_audit``."""
    with transaction.atomic(), people_acting(actor):
        if password:
            validate_password(password, User(username=username, email=email))
        user = User.objects.create_user(username=username, email=email, password=password or None)
    return user


def person_update(user: User, *, actor: Actor, **changes: Any) -> PersonChange:
    """Change a person's account: at once on oneself, or when it lowers what
    the account can do (deactivating it); as a request otherwise."""
    unknown = set(changes) - set(PERSON_FIELDS)
    if unknown:
        raise ValidationError(f"{', '.join(sorted(unknown))} cannot be changed here.")
    acting = person(actor)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        diff = {field: value for field, value in changes.items() if getattr(locked, field) != value}
        own = acting is not None and acting.pk == locked.pk
        guarded = {} if own else {f: v for f, v in diff.items() if f in GUARDED_FIELDS or (f == "is_active" and v)}
        at_once = {f: v for f, v in diff.items() if f not in guarded}
        if own and at_once.get("is_active") is False:
            raise ValidationError("You cannot deactivate your own account; ask another administrator.")
        request = None
        if guarded:
            request = change_request_file(
                kind=ChangeRequest.Kind.PERSON,
                target_type="user",
                target_id=locked.pk,
                target_name=locked.get_username(),
                changes={f: {"before": getattr(locked, f), "after": v} for f, v in guarded.items()},
                values=guarded,
                actor=actor,
            )
        if at_once:
            with people_acting(actor):
                for field, value in at_once.items():
                    setattr(locked, field, value)
                locked.full_clean(exclude=["password"], validate_unique=True)
                locked.save(update_fields=list(at_once))
    user.refresh_from_db()
    return PersonChange(user, request)


def person_apply_request(request: ChangeRequest, *, actor: Actor) -> User:
    """Write an approved change to a person's account, if it still holds the values it was asked against."""
    locked = User.objects.select_for_update().get(pk=request.target_id)
    stale = [f for f, v in request.changes.items() if getattr(locked, f) != v["before"]]
    if stale:
        raise ValidationError(f"{locked.get_username()} changed since the request ({', '.join(stale)}); ask again.")
    with people_acting(actor):
        for field, value in request.values.items():
            setattr(locked, field, value)
        locked.full_clean(exclude=["password"])
        locked.save(update_fields=list(request.values))
    return locked


def role_request(user: User, role: str, *, actor: Actor) -> ChangeRequest:
    """Ask for ``user`` to get ``role``: a second administrator approves it."""
    if role not in ROLES:
        raise ValidationError(f"{role!r} is not a role; the roles are {', '.join(ROLES)}.")
    roles = roles_of(user)
    if role in roles:
        raise ValidationError(f"{user.get_username()} is {role} already.")
    return change_request_file(
        kind=ChangeRequest.Kind.ROLE,
        target_type="user",
        target_id=user.pk,
        target_name=user.get_username(),
        changes={"roles": {"before": roles, "after": sorted({*roles, role})}},
        values={"role": role},
        actor=actor,
    )


def role_take(user: User, role: str, *, actor: Actor) -> None:
    """Take a role away (at once: it lowers what the person can do)."""
    if role not in roles_of(user):
        raise ValidationError(f"{user.get_username()} is not {role}.")
    role_remove(user, role, actor=actor)


def password_reset_request(user: User, *, actor: Actor) -> ChangeRequest:
    """Ask for another person's password to be reset. Once approved, their
    password stops working and they are mailed a link to choose a new one:
    neither administrator ever knows it."""
    acting = person(actor)
    if acting is not None and acting.pk == user.pk:
        raise ValidationError("Change your own password from your account page (it asks for the current one).")
    return change_request_file(
        kind=ChangeRequest.Kind.PASSWORD_RESET,
        target_type="user",
        target_id=user.pk,
        target_name=user.get_username(),
        changes={"password": {"before": "(set)", "after": "reset; a link to choose a new one is mailed to them"}},
        values={},
        actor=actor,
    )


def second_factor_reset_request(user: User, *, actor: Actor, reason: str = "") -> ChangeRequest:
    """Ask for another person's second factor to be removed (a lost phone); a second administrator approves."""
    acting = person(actor)
    if acting is not None and acting.pk == user.pk:
        raise ValidationError("Change your own second factor from your second-factor page.")
    return change_request_file(
        kind=ChangeRequest.Kind.SECOND_FACTOR_RESET,
        target_type="user",
        target_id=user.pk,
        target_name=user.get_username(),
        changes={"second_factor": {"before": "(enrolled)", "after": "removed; they enrol again"}},
        values={"reason": reason[:1000]},
        actor=actor,
        comment=reason,
    )


def password_change_own(user: User, new_password: str, *, actor: Actor) -> None:
    """A person's own new password (the form has checked the old one)."""
    acting = person(actor)
    if acting is None or acting.pk != user.pk:
        audit_record(
            actor=actor,
            action=AuditAction.PERSON_CHANGE_REFUSED,
            target=user,
            data={"user": user.get_username(), "change": "password", "reason": "not their own"},
        )
        raise ValidationError("Only the person themselves sets their password here.")
    with transaction.atomic(), people_acting(actor):
        user.set_password(new_password)
        user.save(update_fields=["password"])
