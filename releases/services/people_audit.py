"""Every change to a person, whatever path made it (the console, the admin,
``createsuperuser``, a shell), goes into the audit trail with the values
before and after, in the transaction that made it (DESIGN.md principle 10).

The model signals call these; a service that changes a person says who is
acting (``people_acting``), and the event then names them. A change made
with no one acting (a shell, a command on the server) is recorded as the
system's, marked ``outside_the_console_pages``. A password is never
recorded, only that it changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, Permission, User

from releases.actors import Actor
from releases.models import AuditAction
from releases.services.audit import audit_record

FIELDS = ("username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser")
# Saved at every sign-in; not a change to the person.
_QUIET = frozenset({"last_login"})


@dataclass(frozen=True)
class Acting:
    actor: Actor
    # The roles are recorded by the service itself (releases.services.roles).
    roles_recorded: bool = False


_acting: ContextVar[Acting | None] = ContextVar("people_acting", default=None)


@contextmanager
def people_acting(actor: Actor, *, roles_recorded: bool = False) -> Iterator[None]:
    token = _acting.set(Acting(actor, roles_recorded))
    try:
        yield
    finally:
        _acting.reset(token)


def _who() -> tuple[Actor, dict[str, Any]]:
    acting = _acting.get()
    if acting is None:
        return None, {"outside_the_console_pages": True}
    return acting.actor, {}


def person_values(user: User) -> dict[str, Any]:
    return {field: getattr(user, field) for field in FIELDS}


def person_before_save(user: User, update_fields: Iterable[str] | None) -> None:
    """Keep the stored values (and password hash) on the instance, for the comparison after."""
    if update_fields is not None and set(update_fields) <= _QUIET:
        return
    stored = User.objects.filter(pk=user.pk).values(*FIELDS, "password").first() if user.pk else None
    user._audit_before = stored  # type: ignore[attr-defined]


def person_after_save(user: User, *, created: bool) -> None:
    stored: dict[str, Any] | None = getattr(user, "_audit_before", None)
    if not hasattr(user, "_audit_before"):
        return
    del user._audit_before
    actor, marks = _who()
    if created or stored is None:
        audit_record(
            actor=actor,
            action=AuditAction.PERSON_CREATED,
            target=user,
            data={**person_values(user), "password_usable": user.has_usable_password(), **marks},
        )
        return
    diff: dict[str, Any] = {
        field: {"before": stored[field], "after": getattr(user, field)}
        for field in FIELDS
        if stored[field] != getattr(user, field)
    }
    password_changed = stored["password"] != user.password
    if not diff and not password_changed:
        return
    if password_changed:
        diff["password"] = {"before": "(set)", "after": "changed" if user.has_usable_password() else "unusable"}
    action = AuditAction.PASSWORD_CHANGED if list(diff) == ["password"] else AuditAction.PERSON_CHANGED
    audit_record(actor=actor, action=action, target=user, data={"user": user.get_username(), **diff, **marks})


def roles_of(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def person_groups_changing(user: User) -> None:
    """Before groups are added or removed: what the person had."""
    user._audit_roles_before = roles_of(user)  # type: ignore[attr-defined]


def person_groups_changed(user: User, added: bool) -> None:
    """Roles given or taken by any path but ``roles`` (which records its own)."""
    before: list[str] = getattr(user, "_audit_roles_before", [])
    acting = _acting.get()
    if acting is not None and acting.roles_recorded:
        return
    after = roles_of(user)
    if before == after:
        return
    actor, marks = _who()
    audit_record(
        actor=actor,
        action=AuditAction.ROLE_ASSIGNED if added else AuditAction.ROLE_REMOVED,
        target=user,
        data={"user": user.get_username(), "roles": {"before": before, "after": after}, **marks},
    )


def group_members_changed(group: Group, user_ids: Iterable[int], added: bool) -> None:
    """``group.user_set.add(...)``: the same, from the group's side."""
    acting = _acting.get()
    if acting is not None and acting.roles_recorded:
        return
    for user in User.objects.filter(pk__in=list(user_ids)):
        after = roles_of(user)
        before = sorted(set(after) - {group.name}) if added else sorted({*after, group.name})
        actor, marks = _who()
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_ASSIGNED if added else AuditAction.ROLE_REMOVED,
            target=user,
            data={"user": user.get_username(), "roles": {"before": before, "after": after}, **marks},
        )


def person_permissions_changed(user: User, before: list[str]) -> None:
    """Permissions given to a person directly (never by the console's roles)."""
    after = direct_permissions(user)
    if before == after:
        return
    actor, marks = _who()
    audit_record(
        actor=actor,
        action=AuditAction.PERSON_CHANGED,
        target=user,
        data={"user": user.get_username(), "user_permissions": {"before": before, "after": after}, **marks},
    )


def direct_permissions(user: User) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in Permission.objects.filter(user=user).values_list("content_type__app_label", "codename")
    )


def person_deleted(user: User) -> None:
    """A person deleted (a shell; the admin deletes no one): who they were."""
    actor, marks = _who()
    audit_record(actor=actor, action=AuditAction.PERSON_DELETED, target=user, data={**person_values(user), **marks})
