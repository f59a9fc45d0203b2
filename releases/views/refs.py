"""The repository's tags and branches, for the form that creates a release."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from releases.errors import StepFailed, TransientError
from releases.services.workflow import github_refs
from releases.views.lookups import project_or_404


@login_required
@require_GET
def project_refs(request: HttpRequest, name: str) -> JsonResponse:
    project = project_or_404(name)
    if not project.github_repository:
        return JsonResponse({"refs": [], "error": "The project has no GitHub repository."})
    try:
        refs = github_refs(project)
    except (StepFailed, TransientError) as exc:
        return JsonResponse({"refs": [], "error": str(exc)})
    return JsonResponse({"refs": refs, "error": ""})
