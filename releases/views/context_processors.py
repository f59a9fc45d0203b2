"""What every page's template is given, whatever the view."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def sandbox_warning(request: HttpRequest) -> dict[str, bool]:
    """Whether package code runs outside the sandbox (the operator's
    opt-out): every page then says so."""
    return {"unsandboxed_builds": settings.UNSAFE_UNSANDBOXED_BUILDS}
