"""People for approval tests: releasers, approvers, administrators."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User


def make_user(username: str, *, approver: bool = False, superuser: bool = False) -> User:
    user = User.objects.create_user(
        username,
        email=f"{username}@example.org",
        password="correct horse battery staple",
        is_superuser=superuser,
        is_staff=superuser,
    )
    if approver:
        user.user_permissions.add(
            Permission.objects.get(codename="approve_deployment", content_type__app_label="releases")
        )
    # A fresh instance: has_perm caches what it read.
    return User.objects.get(pk=user.pk)
