"""The project page: its releases per environment, and the form to create one."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from packaging.utils import canonicalize_name

from releases.models import Environment, Project
from releases.selectors.release_pages import project_release_rows
from releases.services.projects import project_unreleased_tags
from releases.services.releases import release_create
from releases.views.access import require_permission, viewer_required
from releases.views.forms import ReleaseForm

RELEASES_PER_PAGE = 25


def _project(name: str) -> Project:
    project = Project.objects.filter(name=canonicalize_name(name)).first()
    if project is None:
        raise Http404(f"There is no project named {name!r}.")
    return project


def _render_project(request: HttpRequest, project: Project, form: ReleaseForm, status: int = 200) -> HttpResponse:
    environments = list(Environment.objects.order_by("position", "name"))
    page = Paginator(project.releases.select_related("created_by").order_by("-created_at", "-id"), RELEASES_PER_PAGE)
    releases_page = page.get_page(request.GET.get("page"))
    rows = project_release_rows(project, list(releases_page.object_list), environments)
    can_create = request.user.has_perm("releases.add_release")
    candidates, tags_problem = project_unreleased_tags(project) if can_create else ([], "")
    return render(
        request,
        "releases/project.html",
        {
            "project": project,
            "environments": environments,
            "rows": rows,
            "page": releases_page,
            "form": form,
            "can_create": can_create,
            "can_edit": request.user.has_perm("releases.change_project"),
            "candidates": candidates,
            "tags_problem": tags_problem,
        },
        status=status,
    )


@viewer_required
def project_detail(request: HttpRequest, name: str) -> HttpResponse:
    return _render_project(request, _project(name), ReleaseForm())


@require_POST
@viewer_required
def project_release_create(request: HttpRequest, name: str) -> HttpResponse | HttpResponseRedirect:
    project = _project(name)
    require_permission(request, "releases.add_release")
    form = ReleaseForm(request.POST)
    if form.is_valid():
        try:
            release = release_create(
                project=project, version=form.cleaned_data["version"], ref=form.cleaned_data["ref"], actor=request.user
            )
        except ValidationError as exc:
            form.add_error("version", exc)
        else:
            return redirect("releases:release", name=project.name, version=release.version)
    return _render_project(request, project, form, status=400)
