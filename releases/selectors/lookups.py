"""Rows found by the name a person or a webhook gives: a project, an
environment, a release."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from packaging.utils import canonicalize_name

from releases.models import Environment, Project, Release


def project_by_name(name: str) -> Project:
    project = Project.objects.filter(name=canonicalize_name(name)).first()
    if project is None:
        raise ValidationError(f"There is no project named {name!r}; add it with project_add.")
    return project


def environment_by_name(name: str) -> Environment:
    environment = Environment.objects.filter(name=name).first()
    if environment is None:
        known = ", ".join(Environment.objects.values_list("name", flat=True)) or "none yet"
        raise ValidationError(f"There is no environment named {name!r} (known: {known}).")
    return environment


def environment_named(name: str) -> Environment | None:
    return Environment.objects.filter(name=name).first()


def release_by_version(project_name: str, version: str) -> Release:
    project = project_by_name(project_name)
    release = Release.objects.filter(project=project, version=version).first()
    if release is None:
        raise ValidationError(f"{project.name} has no release {version!r}; create it with release_create.")
    return release


def environment_first_automatic() -> Environment | None:
    """Where a release from a GitHub webhook goes first: test-pypi, or else
    the first environment (by position) that needs no approval and follows none."""
    named = Environment.objects.filter(name="test-pypi").first()
    if named is not None:
        return named
    return (
        Environment.objects.filter(required_approvals=0, requires_success_in__isnull=True)
        .order_by("position", "name")
        .first()
    )
