from __future__ import annotations

from django.urls import URLPattern, path

from releases.views import approvals, audit, second_factor

app_name = "releases"

urlpatterns: list[URLPattern] = [
    path("approvals/", approvals.awaiting, name="approvals"),
    path("deployments/<int:deployment_id>/approval/", approvals.approval, name="approval"),
    path("deployments/<int:deployment_id>/approval/decide/", approvals.approval_decide, name="approval_decide"),
    path("deployments/<int:deployment_id>/approval/cancel/", approvals.approval_cancel_view, name="approval_cancel"),
    path("audit/", audit.audit, name="audit"),
    path("account/second-factor/", second_factor.second_factor, name="second_factor"),
    path("account/second-factor/confirm/", second_factor.second_factor_confirm_view, name="second_factor_confirm"),
    path("account/second-factor/verify/", second_factor.second_factor_verify, name="second_factor_verify"),
]
