"""Adding and editing a project from the console, for administrators: the
same rules as the admin and ``project_add`` (the model's ``clean``, then
``project_create`` or ``project_update``), each refusal beside its field. A
name is written as PyPI normalizes it, as in the admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from releases.models import Project
from releases.services.projects import project_create, project_update
from releases.views.access import require_permission, viewer_required
from releases.views.lookups import project_or_404

FIELDS = [
    "name",
    "source",
    "subdirectory",
    "tag_pattern",
    "github_repository",
    "workflow_file",
    "publish_mode",
    "wheels_workflow",
    "repair_wheels",
    "strict_checks",
]


class ProjectForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Project
        fields = FIELDS
        labels = {
            "source": "Git repository",
            "tag_pattern": "Release tags",
            "github_repository": "GitHub repository",
            "strict_checks": "Strict: twine check warnings fail the build",
            "subdirectory": "Folder in the repository",
            "wheels_workflow": "Wheels from CI: workflow file",
            "repair_wheels": "Repair compiled wheels with auditwheel (manylinux, as PyPI requires)",
        }
        help_texts = {
            "name": "As on PyPI, normalized: lower case, '-' between words (my-package).",
            "source": "A git URL (https, ssh, git) or the path of a repository on this machine.",
            "tag_pattern": "Tags that start a release, for example v*.*.*",
            "github_repository": "owner/name, if the project lives on GitHub (optional).",
            "subdirectory": "Where the package is, for a repository that holds several (packages/core); empty: its root.",
        }


def _save(form: ProjectForm, request: HttpRequest, project: Project | None) -> Project | None:
    """The service's answer; a refusal goes back to the form beside its field."""
    values: dict[str, Any] = {field: form.cleaned_data[field] for field in FIELDS if field in form.cleaned_data}
    try:
        if project is None:
            return project_create(actor=request.user, **values)
        changes = {field: values[field] for field in form.changed_data if field in values and field != "name"}
        return project_update(project, actor=request.user, **changes)
    except ValidationError as exc:
        for field, errors in exc.message_dict.items() if hasattr(exc, "error_dict") else {None: exc.messages}.items():
            form.add_error(field if field in form.fields else None, errors)
        return None


@viewer_required
@require_http_methods(["GET", "POST"])
def project_add(request: HttpRequest) -> HttpResponse:
    require_permission(request, "releases.add_project")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and (project := _save(form, request, None)) is not None:
        messages.success(request, f"Project {project.name} added. Create its first release below.")
        return redirect("releases:project", name=project.name)
    return render(
        request,
        "releases/project_form.html",
        {"form": form, "adding": True},
        status=400 if form.is_bound else 200,
    )


@viewer_required
@require_http_methods(["GET", "POST"])
def project_edit(request: HttpRequest, name: str) -> HttpResponse:
    require_permission(request, "releases.change_project")
    project = project_or_404(name)
    form = ProjectForm(request.POST or None, instance=Project.objects.get(pk=project.pk))
    form.fields["name"].disabled = True  # a project keeps its name: its releases are on the index under it
    if request.method == "POST" and form.is_valid() and _save(form, request, project) is not None:
        messages.success(request, f"Project {project.name} saved.")
        return redirect("releases:project", name=project.name)
    return render(
        request,
        "releases/project_form.html",
        {"form": form, "adding": False, "project": project},
        status=400 if form.is_bound else 200,
    )
