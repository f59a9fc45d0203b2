"""The audit trail, filtered and paginated."""

from __future__ import annotations

from datetime import date

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from releases.selectors.audit import AuditFilters, audit_events
from releases.views.access import viewer_required

PAGE_SIZE = 50


def _date(raw: str, errors: list[str], label: str) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.append(f"{label}: {raw!r} is not a date (YYYY-MM-DD).")
        return None


def _release_id(raw: str, errors: list[str]) -> int | None:
    if not raw:
        return None
    if not raw.isdigit():
        errors.append(f"Release: {raw!r} is not a release number.")
        return None
    return int(raw)


@viewer_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    errors: list[str] = []
    filters = AuditFilters(
        actor=request.GET.get("actor", "").strip()[:150],
        action=request.GET.get("action", "").strip()[:60],
        object=request.GET.get("object", "").strip()[:80],
        release_id=_release_id(request.GET.get("release", "").strip(), errors),
        date_from=_date(request.GET.get("from", "").strip(), errors, "From"),
        date_to=_date(request.GET.get("to", "").strip(), errors, "To"),
    )
    page = Paginator(audit_events(filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "releases/audit/list.html",
        {"page": page, "filters": filters, "errors": errors, "query": query.urlencode()},
        status=400 if errors else 200,
    )
