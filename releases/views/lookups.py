"""The rows a page's address names, or a 404 that says what was missing."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404

from releases.models import Project, Release
from releases.selectors.lookups import project_by_name
from releases.selectors.release_pages import release_for_page


def project_or_404(name: str) -> Project:
    try:
        return project_by_name(name)
    except ValidationError:
        raise Http404(f"There is no project named {name!r}.") from None


def release_or_404(name: str, version: str) -> Release:
    release = release_for_page(name, version)
    if release is None:
        raise Http404(f"There is no release {version!r} of {name!r}.")
    return release
