"""Administration of projects, environments and credentials; history read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest

from releases.models import (
    Credential,
    Deployment,
    Environment,
    Job,
    Project,
    Release,
    WebhookDelivery,
    WorkflowRun,
)
from releases.services.credentials import credential_change, credential_create, credential_set_value
from releases.services.projects import environment_create, environment_update, project_create, project_update


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
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field != "token"}
        if changes:
            credential_change(Credential.objects.get(pk=obj.pk), actor=request.user, **changes)
        if token:
            credential_set_value(obj, token, actor=request.user)
        obj.refresh_from_db()

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


class ServiceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A record the admin edits through the services, like every other path:
    the form shows the model's rules beside each field, the save is the
    service's (audited with the values before and after), and nothing with
    history behind it is deleted here."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def create(self, request: HttpRequest, obj: Any, form: forms.ModelForm) -> Any:  # type: ignore[type-arg]
        raise NotImplementedError

    def update(self, request: HttpRequest, obj: Any, changes: dict[str, Any]) -> Any:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if not change:
            created = self.create(request, obj, form)
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field in form.cleaned_data}
        self.update(request, type(obj).objects.get(pk=obj.pk), changes)
        obj.refresh_from_db()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # releases and deployments point at it; history is kept


@admin.register(Project)
class ProjectAdmin(ServiceAdmin):
    list_display = ["name", "source", "github_repository", "publish_mode", "created_at"]
    search_fields = ["name"]

    def create(self, request: HttpRequest, obj: Project, form: forms.ModelForm) -> Project:  # type: ignore[type-arg]
        fields = {name: value for name, value in form.cleaned_data.items() if name not in ("name", "source")}
        return project_create(name=obj.name, source=obj.source, actor=request.user, **fields)

    def update(self, request: HttpRequest, obj: Project, changes: dict[str, Any]) -> Project:
        return project_update(obj, actor=request.user, **changes)


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdmin):
    list_display = ["name", "title", "index_url", "required_approvals", "requires_success_in", "position"]
    list_editable = ["position"]

    def create(self, request: HttpRequest, obj: Environment, form: forms.ModelForm) -> Environment:  # type: ignore[type-arg]
        fields = {
            name: value
            for name, value in form.cleaned_data.items()
            if name not in ("name", "title", "upload_url", "index_url", "requires_success_in")
            # Left as it was: PyPI's rules then follow the address (on for pypi.org, test.pypi.org).
            and not (name == "pypi_rules" and name not in form.changed_data)
        }
        earlier = form.cleaned_data.get("requires_success_in")
        return environment_create(
            name=obj.name,
            title=obj.title,
            upload_url=obj.upload_url,
            index_url=obj.index_url,
            after=earlier.name if earlier is not None else "",
            actor=request.user,
            **fields,
        )

    def update(self, request: HttpRequest, obj: Environment, changes: dict[str, Any]) -> Environment:
        return environment_update(obj, actor=request.user, **changes)


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
    list_display = ["project", "version", "ref", "state", "outcome", "created_by", "created_at"]
    list_filter = ["state", "outcome", "project"]
    list_select_related = ["project", "created_by"]
    search_fields = ["version", "project__name"]


@admin.register(Deployment)
class DeploymentAdmin(HistoryAdmin):
    list_display = ["pk", "release", "environment", "state", "outcome", "requested_by", "created_at", "finished_at"]
    list_filter = ["state", "outcome", "environment"]
    list_select_related = ["release__project", "environment", "requested_by"]
    date_hierarchy = "created_at"


@admin.register(Job)
class JobAdmin(HistoryAdmin):
    list_display = ["pk", "kind", "release", "state", "outcome", "attempts", "started_at", "finished_at"]
    list_filter = ["kind", "state", "outcome"]
    list_select_related = ["release__project"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(HistoryAdmin):
    list_display = [
        "received_at",
        "project_name",
        "event",
        "action",
        "status_code",
        "state",
        "outcome",
        "delivery_id",
        "address",
        "repeats",
    ]
    list_filter = ["state", "outcome", "event", "status_code"]
    search_fields = ["delivery_id", "project_name", "reason"]
    readonly_fields = [
        "received_at",
        "project",
        "project_name",
        "delivery_id",
        "event",
        "action",
        "accepted",
        "status_code",
        "state",
        "outcome",
        "reason",
        "body_size",
        "address",
        "repeats",
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
        "late_events",
        "status",
        "conclusion",
        "jobs",
    ]
