"""Administration of projects, environments and credentials; history read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.http import HttpRequest

from releases.models import Credential, Deployment, Environment, Job, Project, Release, WebhookDelivery, WorkflowRun
from releases.services.audit import audit_record
from releases.services.credentials import credential_create, credential_set_value


class CredentialForm(forms.ModelForm):  # type: ignore[type-arg]
    """The secret is write-only: typed in, encrypted, never shown again."""

    token = forms.CharField(
        label="Secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Paste a new token to set or replace it. It is stored encrypted; only its last four characters are shown.",
    )

    class Meta:
        model = Credential
        fields = ["name", "kind", "scope", "username"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is None and not data.get("token"):
            self.add_error("token", "Enter the secret for a new credential.")
        return data


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = CredentialForm
    list_display = ["name", "kind", "scope", "username", "masked", "rotated_at", "last_used_at"]
    readonly_fields = ["masked", "created_at", "rotated_at", "last_used_at"]
    search_fields = ["name"]

    @admin.display(description="Secret")
    def masked(self, credential: Credential) -> str:
        return f"…{credential.last_four}" if credential.last_four else "—"

    def save_model(self, request: HttpRequest, obj: Credential, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        token = form.cleaned_data.get("token", "")
        if not change:
            created = credential_create(
                name=obj.name, value=token, kind=obj.kind, username=obj.username, scope=obj.scope, actor=request.user
            )
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        changed = [field for field in form.changed_data if field != "token"]
        if changed:
            with transaction.atomic():
                obj.save(update_fields=changed)
                audit_record(
                    actor=request.user,
                    action="credential.changed",
                    target=obj,
                    data={"name": obj.name, "changed": {field: str(getattr(obj, field)) for field in changed}},
                )
        if token:
            credential_set_value(obj, token, actor=request.user)

    def response_add(self, request: HttpRequest, obj: Credential, *args: Any, **kwargs: Any) -> Any:
        self._warn_scope(request, obj)
        return super().response_add(request, obj, *args, **kwargs)

    def response_change(self, request: HttpRequest, obj: Credential) -> Any:
        self._warn_scope(request, obj)
        return super().response_change(request, obj)

    def _warn_scope(self, request: HttpRequest, credential: Credential) -> None:
        if credential.scope_warning:
            messages.warning(request, credential.scope_warning)

    def has_delete_permission(self, request: HttpRequest, obj: Credential | None = None) -> bool:
        return False  # environments and projects point at credentials; replace the value instead


class AuditedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Saves made in the admin are audited like every other change."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        model = obj._meta.model_name
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                actor=request.user,
                action=f"{model}.{'changed' if change else 'created'}",
                target=obj,
                data={"name": str(obj), "fields": sorted(form.changed_data), "through": "admin"},
            )


@admin.register(Project)
class ProjectAdmin(AuditedAdmin):
    list_display = ["name", "source", "github_repository", "publish_mode", "created_at"]
    search_fields = ["name"]


@admin.register(Environment)
class EnvironmentAdmin(AuditedAdmin):
    list_display = ["name", "title", "index_url", "required_approvals", "requires_success_in", "position"]
    list_editable = ["position"]


class HistoryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """History is written by the pipeline alone: it can be read here, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Release)
class ReleaseAdmin(HistoryAdmin):
    list_display = ["project", "version", "ref", "build_state", "created_by", "created_at"]
    list_filter = ["build_state", "project"]
    list_select_related = ["project", "created_by"]
    search_fields = ["version", "project__name"]


@admin.register(Deployment)
class DeploymentAdmin(HistoryAdmin):
    list_display = ["pk", "release", "environment", "status", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "environment"]
    list_select_related = ["release__project", "environment", "requested_by"]
    date_hierarchy = "created_at"


@admin.register(Job)
class JobAdmin(HistoryAdmin):
    list_display = ["pk", "kind", "release", "state", "outcome", "attempts", "started_at", "finished_at"]
    list_filter = ["kind", "state", "outcome"]
    list_select_related = ["release__project"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(HistoryAdmin):
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
class WorkflowRunAdmin(HistoryAdmin):
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
