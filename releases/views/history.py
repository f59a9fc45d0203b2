"""The release history: every deployment ever, filtered through the URL."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from releases.selectors.history import deployment_history
from releases.views.access import viewer_required
from releases.views.forms import HistoryFilterForm

DEPLOYMENTS_PER_PAGE = 50


@viewer_required
def history(request: HttpRequest) -> HttpResponse:
    form = HistoryFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    deployments = deployment_history(filters)
    page = Paginator(deployments, DEPLOYMENTS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "releases/history.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "people": form.people(),
            "filtered": bool(filters and any(filters.values())),
        },
        status=200 if not form.is_bound or form.is_valid() else 400,
    )
