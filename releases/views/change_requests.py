"""Change requests: administrators see what waits for a second one, and
approve or refuse it (POST, CSRF, checked by the service); the requester may cancel."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from releases.models import ChangeRequest
from releases.selectors.change_requests import change_requests_decided, change_requests_pending
from releases.services.change_decisions import ChangeDecisionRefused, change_cancel, change_decide
from releases.services.change_requests import ChangeBlocker, can_decide_changes, change_describe, change_eligibility
from releases.services.people import password_change_own
from releases.views.access import viewer_required
from releases.views.second_factor import second_factor_fresh


@dataclass(frozen=True)
class Row:
    change: ChangeRequest
    lines: list[str]
    blockers: list[ChangeBlocker]
    can_cancel: bool


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _page(request: HttpRequest, *, error: str = "", status: int = 200) -> HttpResponse:
    user = _user(request)
    if not can_decide_changes(user):
        raise PermissionDenied("Change requests are for administrators.")
    verified = second_factor_fresh(request)
    rows = [
        Row(
            change,
            change_describe(change),
            change_eligibility(change, user, second_factor_verified=verified),
            change.requested_by_id == user.pk,
        )
        for change in change_requests_pending()
    ]
    decided = [(change, change_describe(change)) for change in change_requests_decided()]
    return render(
        request,
        "releases/change_requests.html",
        {"rows": rows, "decided": decided, "error": error, "verified": verified},
        status=status,
    )


@viewer_required
@require_GET
def change_requests(request: HttpRequest) -> HttpResponse:
    return _page(request)


@viewer_required
@require_POST
def change_request_decide(request: HttpRequest, change_id: int) -> HttpResponse:
    change = get_object_or_404(ChangeRequest, pk=change_id)
    decision = request.POST.get("decision", "")
    try:
        change_decide(
            change,
            _user(request),
            decision,
            comment=request.POST.get("comment", "")[:2000],
            second_factor_verified=second_factor_fresh(request),
        )
    except ChangeDecisionRefused as refused:
        return _page(request, error=refused.message, status=403)
    change.refresh_from_db()
    messages.success(request, f"Change request #{change.pk} ({change.target_name}): {change.label.lower()}.")
    return redirect("releases:change_requests")


@viewer_required
@require_POST
def change_request_cancel(request: HttpRequest, change_id: int) -> HttpResponse:
    change = get_object_or_404(ChangeRequest, pk=change_id)
    try:
        change_cancel(change, actor=_user(request))
    except ChangeDecisionRefused as refused:
        return _page(request, error=refused.message, status=403)
    messages.success(request, f"Change request #{change.pk} was cancelled.")
    return redirect("releases:change_requests")


@viewer_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """A person's own password, with the current one (``people.password_change_own``)."""
    user = _user(request)
    form = PasswordChangeForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            password_change_own(user, form.cleaned_data["new_password1"], actor=user)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Your password was changed.")
            return redirect("releases:dashboard")
    return render(request, "releases/password_change.html", {"form": form})
