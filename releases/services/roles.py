"""Roles: Django groups with a fixed set of permissions.

viewer reads everything; releaser creates releases and publishes (or asks to
publish) them; approver decides on production pushes; admin looks after
projects, environments, credentials and people. A person may hold several.

The service account (CONSOLE_SERVICE_ACCOUNT) is what a GitHub webhook acts
as: a releaser with no usable password, refused the approver and admin
roles here and refused every decision by ``approvals.can_approve``, whatever
groups an admin may give it by hand.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from releases.actors import Actor, is_service_account
from releases.models import AuditAction
from releases.services.audit import audit_record
from releases.services.people_audit import people_acting, roles_of

ROLES = ("viewer", "releaser", "approver", "admin")

_READ = [
    f"releases.view_{model}"
    for model in (
        "project",
        "environment",
        "release",
        "artifact",
        "deployment",
        "deploymentfile",
        "approval",
        "job",
        "joblogline",
        "auditevent",
    )
]

# Kept in step with the data migration that creates the groups
# (releases/migrations/0002_console_roles.py).
ROLE_PERMISSIONS: dict[str, list[str]] = {
    "viewer": _READ,
    "releaser": [
        *_READ,
        "releases.add_release",
        "releases.publish_deployment",
        "releases.request_deployment",
    ],
    "approver": [*_READ, "releases.approve_deployment"],
    "admin": [
        *_READ,
        *[f"releases.{verb}_{model}" for verb in ("add", "change", "view") for model in ("project", "environment")],
        *[f"releases.{verb}_credential" for verb in ("add", "change", "view")],
        *[f"auth.{verb}_user" for verb in ("add", "change", "view")],
        "auth.view_group",
        "releases.view_changerequest",
        "releases.decide_changerequest",
    ],
}


def roles_sync() -> None:
    """Make the role groups hold exactly their permissions.

    Run after every migrate (and after a test database is flushed), so the
    groups follow ``ROLE_PERMISSIONS`` as it changes.
    """
    for role, dotted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = Q()
        for name in dotted:
            app_label, codename = name.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.set(Permission.objects.filter(wanted))


def role_assign(user: User, role: str, *, actor: Actor = None) -> None:
    """Give ``user`` the role; the admin role also opens the admin site.

    What a person asks for in the console is a request a second
    administrator approves (``people.role_request``); this writes it, once
    approved, or from a command on the server (actor None).
    """
    group = _group(role)
    if is_service_account(user) and role in UNFIT_FOR_SERVICE_ACCOUNT:
        raise ValidationError(
            f"{user.get_username()} is the service account webhooks act as; it requests and never decides, "
            f"so it cannot be {role}."
        )
    with transaction.atomic(), people_acting(actor, roles_recorded=True):
        before = roles_of(user)
        user.groups.add(group)
        if role == "admin" and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_ASSIGNED,
            target=user,
            data={"user": user.username, "role": role, "roles": {"before": before, "after": roles_of(user)}},
        )


UNFIT_FOR_SERVICE_ACCOUNT = ("approver", "admin")


def service_account() -> User:
    """The account a webhook's requests are recorded under, made when first
    needed: it cannot sign in (no usable password) and holds the releaser
    role only."""
    username = settings.CONSOLE_SERVICE_ACCOUNT
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        if not user.groups.filter(name="releaser").exists():
            role_assign(user, "releaser")
    # A fresh instance: has_perm caches what it read.
    return User.objects.get(pk=user.pk)


def role_remove(user: User, role: str, *, actor: Actor = None) -> None:
    """Take a role away: it lowers what the person can do, so it takes effect at once."""
    group = _group(role)
    with transaction.atomic(), people_acting(actor, roles_recorded=True):
        before = roles_of(user)
        user.groups.remove(group)
        if role == "admin" and user.is_staff and not user.is_superuser:
            user.is_staff = False
            user.save(update_fields=["is_staff"])
        audit_record(
            actor=actor,
            action=AuditAction.ROLE_REMOVED,
            target=user,
            data={"user": user.username, "role": role, "roles": {"before": before, "after": roles_of(user)}},
        )


def _group(role: str) -> Group:
    if role not in ROLES:
        raise ValidationError(f"{role!r} is not a role; the roles are {', '.join(ROLES)}.")
    group = Group.objects.filter(name=role).first()
    if group is None:
        raise ValidationError(f"The {role} group is missing; run `manage.py migrate`.")
    return group
