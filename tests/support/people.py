"""People for the tests, given their roles through the service that gives
roles to anyone (releases.services.roles)."""

from __future__ import annotations

from django.contrib.auth.models import User

from releases.services.roles import role_assign


def make_user(username: str, *roles: str, approver: bool = False, superuser: bool = False) -> User:
    """A person who can sign in, with the viewer role and ``roles``
    (``approver=True`` adds the approver role)."""
    user = User.objects.create_user(
        username,
        email=f"{username}@example.org",
        password="correct horse battery staple",
        is_superuser=superuser,
        is_staff=superuser,
    )
    for role in ("viewer", *roles, *(["approver"] if approver else [])):
        role_assign(user, role, actor=None)
    # A fresh instance: has_perm caches what it read.
    return User.objects.get(pk=user.pk)
