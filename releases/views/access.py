"""Who may see and do what: checked on the server for every request."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

from releases.actors import is_service_account

View = TypeVar("View", bound=Callable[..., HttpResponseBase])

# Every role reads; a signed-in person with no role sees nothing.
READ_PERMISSION = "releases.view_release"


def viewer_required(view: View) -> View:
    """Signed in (else to the sign-in page) and allowed to read (else 403)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if is_service_account(request.user):
            raise PermissionDenied("The service account asks for what webhooks start; it does not use the console.")
        if not request.user.has_perm(READ_PERMISSION):
            raise PermissionDenied("Your account has no role in the console yet; ask an administrator.")
        return view(request, *args, **kwargs)

    return login_required(wrapper)  # type: ignore[return-value]


def require_permission(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"You do not have the {permission.split('.')[-1].replace('_', ' ')} permission.")
