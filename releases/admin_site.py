"""The admin site: Django's, for sessions verified with a second factor only
(the default site of ``releases.admin_apps.ConsoleAdminConfig``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from releases.services.second_factor import second_factor_enrolled, second_factor_session_fresh


class ConsoleAdminSite(admin.AdminSite):
    """Django's admin, for sessions verified with a second factor only."""

    site_header = "Release console administration"
    site_title = "Release console"

    def has_permission(self, request: HttpRequest) -> bool:
        return super().has_permission(request) and second_factor_session_fresh(request.user, request.session)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """A signed-in member of staff without a verified session verifies it first."""
        user = request.user
        staff = isinstance(user, User) and user.is_active and user.is_staff
        if staff and not second_factor_session_fresh(user, request.session):
            page = "releases:second_factor_verify" if second_factor_enrolled(user) else "releases:second_factor"  # type: ignore[arg-type]
            messages.info(request, "The admin site needs a session verified with your second factor.")
            next_url = request.GET.get("next") or reverse("admin:index")
            return HttpResponseRedirect(f"{reverse(page)}?{urlencode({'next': next_url})}")
        return super().login(request, extra_context)
