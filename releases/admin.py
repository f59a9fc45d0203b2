from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from releases.models import WebhookDelivery, WorkflowRun


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A record to look at: nobody edits, adds or deletes one here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "project_name", "event", "action", "status_code", "outcome", "delivery_id"]
    list_filter = ["outcome", "event", "status_code"]
    search_fields = ["delivery_id", "project_name", "error"]
    readonly_fields = [
        "received_at",
        "project",
        "project_name",
        "delivery_id",
        "event",
        "action",
        "accepted",
        "status_code",
        "outcome",
        "error",
        "body_size",
        "headers",
        "payload",
        "release",
    ]


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin):
    list_display = ["dispatched_at", "repository", "workflow_file", "run_id", "status", "conclusion", "deployment"]
    list_filter = ["status", "conclusion"]
    readonly_fields = [
        "deployment",
        "repository",
        "workflow_file",
        "head_sha",
        "inputs",
        "dispatched_at",
        "run_id",
        "html_url",
        "status",
        "conclusion",
        "jobs",
    ]
