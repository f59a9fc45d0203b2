"""The dashboard: the deployment board, what waits for approval, recent activity."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from releases.selectors.audit import audit_recent
from releases.selectors.dashboard import deployment_board, deployments_waiting_for_approval
from releases.selectors.lookups import environment_named
from releases.views.access import viewer_required


@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    board = deployment_board()
    return render(
        request,
        "releases/dashboard.html",
        {
            "board": board,
            "rows": board.rows(),
            "waiting": deployments_waiting_for_approval(),
            "activity": audit_recent(),
            "can_add_project": request.user.has_perm("releases.add_project"),
            "sandbox": environment_named("sandbox"),
        },
    )
