"""Administration of projects, environments, credentials and people; history read-only.

The site asks for a session verified with a second factor. What lowers an
environment's protection, and what could hand one person another's power
(a role, another person's account, password or second factor), is filed as
a change request that a second administrator decides on the console's
change requests page; nothing here offers the superuser flag, groups or
permissions (superusers are made on the server, with ``createsuperuser``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from releases.models import (
    ChangeRequest,
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
from releases.services.people import (
    password_reset_request,
    person_create,
    person_update,
    role_request,
    role_take,
    second_factor_reset_request,
)
from releases.services.people_audit import roles_of
from releases.services.projects import (
    environment_change,
    environment_create,
    environment_credential_check,
    project_create,
    project_update,
)
from releases.services.roles import ROLES


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


class EnvironmentForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Environment
        fields = [
            "name",
            "title",
            "upload_url",
            "index_url",
            "fallback_index_url",
            "project_url_template",
            "credential",
            "required_approvals",
            "requires_success_in",
            "allowed_ref_pattern",
            "request_ttl_hours",
            "require_second_factor",
            "workflow_environment",
            "position",
            "block_severity",
            "pypi_rules",
            "index_account",
        ]

    def clean_credential(self) -> Credential | None:
        credential: Credential | None = self.cleaned_data.get("credential")
        if credential is not None:
            existing = self.instance if self.instance.pk else None
            try:
                environment_credential_check(credential, exclude=existing)
            except ValidationError as exc:
                raise ValidationError(exc.message_dict["credential"]) from None
        return credential


@admin.register(Environment)
class EnvironmentAdmin(ServiceAdmin):
    form = EnvironmentForm
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
        result = environment_change(obj, actor=request.user, **changes)
        if result.request is not None:
            request.change_filed = True  # type: ignore[attr-defined]
            fields = ", ".join(result.request.changes)
            messages.warning(
                request,
                f"Lowering the protection of {obj.name} ({fields}) waits for a second administrator: "
                f"change request #{result.request.pk}. Nothing of it is in effect yet.",
            )
        return result.environment

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if not change:
            super().save_model(request, obj, form, change)
            return
        try:
            super().save_model(request, obj, form, change)
        except ValidationError as exc:
            # A second request for the same environment, or one that fails its rules: nothing changed.
            request.change_filed = True  # type: ignore[attr-defined]
            messages.error(request, " ".join(exc.messages))
            obj.refresh_from_db()

    def message_user(  # type: ignore[override]
        self, request: HttpRequest, message: str, *args: Any, **kwargs: Any
    ) -> None:
        if getattr(request, "change_filed", False):
            return  # "changed successfully" would say more than happened
        super().message_user(request, message, *args, **kwargs)


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


class PersonChangeForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email", "is_active"]


class PersonAddForm(forms.ModelForm):  # type: ignore[type-arg]
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        required=False,
        help_text="Optional: empty, the person has no password until one is reset for them.",
    )

    class Meta:
        model = User
        fields = ["username", "email"]


admin.site.unregister(User)


@admin.register(User)
class PersonAdmin(UserAdmin):  # type: ignore[type-arg]
    """People, through ``releases.services.people``: no superuser flag, no
    groups, no permissions, no password of another person. Roles are asked
    for with the actions above the list (a second administrator approves);
    taking one away is at once."""

    form = PersonChangeForm
    add_form = PersonAddForm
    fieldsets = (
        (None, {"fields": ("username",)}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "roles", "is_staff", "is_superuser", "last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"fields": ("username", "email", "password")}),)
    readonly_fields = ("roles", "is_staff", "is_superuser", "last_login", "date_joined")
    list_display = ("username", "email", "roles", "is_active", "is_superuser")
    list_filter = ("is_active", "groups")
    filter_horizontal = ()
    actions = [
        *[f"request_{role}" for role in ROLES],
        *[f"take_{role}" for role in ROLES],
        "request_password_reset",
        "request_second_factor_reset",
    ]

    @admin.display(description="Roles")
    def roles(self, user: User) -> str:
        return ", ".join(roles_of(user)) or "—"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        found = super().get_actions(request)
        found.pop("delete_selected", None)
        return found

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: the audit trail names them

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:  # type: ignore[type-arg]
        if not change:
            created = person_create(
                username=obj.username, email=obj.email, password=form.cleaned_data.get("password"), actor=request.user
            )
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        changes = {field: form.cleaned_data[field] for field in form.changed_data if field in form.cleaned_data}
        try:
            result = person_update(User.objects.get(pk=obj.pk), actor=request.user, **changes)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            obj.refresh_from_db()
            return
        if result.request is not None:
            messages.warning(
                request,
                f"Changing {', '.join(result.request.changes)} of {obj.username} waits for a second administrator: "
                f"change request #{result.request.pk}.",
            )
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:  # type: ignore[type-arg]
        """No many-to-many field is on these forms; nothing else is written."""

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Another person's password is never set by an administrator: ask for
        a reset (a second administrator approves; the person chooses it)."""
        user = self.get_object(request, id)
        if user is not None and user.pk == request.user.pk:
            return HttpResponseRedirect(reverse("password_change"))
        raise PermissionDenied(
            "An administrator does not set another person's password. Select the person in the list and "
            "choose 'Ask a second admin to reset the password'."
        )

    def _each(self, request: HttpRequest, queryset: QuerySet[User], what: Any, done: str) -> None:
        for user in queryset:
            try:
                result = what(user)
            except ValidationError as exc:
                messages.error(request, f"{user.username}: {' '.join(exc.messages)}")
                continue
            suffix = f" (change request #{result.pk}, waiting for a second administrator)" if result else ""
            messages.success(request, f"{user.username}: {done}{suffix}.")

    @admin.action(description="Ask a second admin to reset the password")
    def request_password_reset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._each(request, queryset, lambda u: password_reset_request(u, actor=request.user), "password reset asked")

    @admin.action(description="Ask a second admin to reset the second factor")
    def request_second_factor_reset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._each(
            request,
            queryset,
            lambda u: second_factor_reset_request(u, actor=request.user),
            "second factor reset asked",
        )


def _role_action(verb: str, role: str) -> Any:
    def action(modeladmin: PersonAdmin, request: HttpRequest, queryset: QuerySet[User]) -> None:
        if verb == "request":
            modeladmin._each(
                request, queryset, lambda u: role_request(u, role, actor=request.user), f"{role} role asked"
            )
        else:
            modeladmin._each(request, queryset, lambda u: role_take(u, role, actor=request.user), f"no longer {role}")

    action.__name__ = f"{verb}_{role}"
    description = f"Ask a second admin to give the {role} role" if verb == "request" else f"Take the {role} role away"
    return admin.action(description=description)(action)


for _role in ROLES:
    for _verb in ("request", "take"):
        setattr(PersonAdmin, f"{_verb}_{_role}", _role_action(_verb, _role))


@admin.register(ChangeRequest)
class ChangeRequestAdmin(HistoryAdmin):
    """Read here; decided on the console's change requests page."""

    list_display = ["pk", "kind", "target_name", "state", "outcome", "requested_by", "decided_by", "created_at"]
    list_filter = ["state", "outcome", "kind"]
