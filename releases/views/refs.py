"""The repository's tags and branches, for the form that creates a release.

Asked of GitHub with the project's token: for releasers only (the form's
own people), never for a signed-in account without that role."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from releases.errors import StepFailed, TransientError
from releases.services.releases import ADD_RELEASE_PERMISSION
from releases.services.workflow import github_refs
from releases.views.access import require_permission, viewer_required
from releases.views.lookups import project_or_404


@viewer_required
@require_GET
def project_refs(request: HttpRequest, name: str) -> JsonResponse:
    require_permission(request, ADD_RELEASE_PERMISSION)
    project = project_or_404(name)
    if not project.github_repository:
        return JsonResponse({"refs": [], "error": "The project has no GitHub repository."})
    try:
        refs = github_refs(project)
    except (StepFailed, TransientError) as exc:
        return JsonResponse({"refs": [], "error": str(exc)})
    return JsonResponse({"refs": refs, "error": ""})
