"""People with roles, and rows for the console's page tests."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.models import User
from django.utils import timezone

from releases.models import Deployment, Environment, Project, Release
from releases.services.projects import environment_create, project_create
from releases.services.roles import role_assign

PASSWORD = "a-long-test-password-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"person{n}")
    password = factory.django.Password(PASSWORD)


def person_with_role(role: str | None, username: str | None = None) -> User:
    user = UserFactory(username=username or f"{role or 'nobody'}-{User.objects.count() + 1}")
    if role:
        role_assign(user, role)
    return user


class ProjectFactory(factory.django.DjangoModelFactory):
    """A project, made by ``project_create`` as every other is."""

    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"pkg-{n}")
    source = "https://example.org/pkg.git"

    @classmethod
    def _create(cls, model_class: type[Project], *args: Any, **kwargs: Any) -> Project:
        return project_create(actor=None, **kwargs)


class EnvironmentFactory(factory.django.DjangoModelFactory):
    """An environment with an upload token, made by ``environment_create``."""

    class Meta:
        model = Environment

    name = factory.Sequence(lambda n: f"env-{n}")
    title = factory.LazyAttribute(lambda o: o.name.replace("-", " ").title())
    upload_url = "http://127.0.0.1:1/upload/"
    index_url = "http://127.0.0.1:1/simple/"
    position = factory.Sequence(lambda n: n)
    token = factory.Sequence(lambda n: f"test-upload-token-{n:04d}")

    @classmethod
    def _create(cls, model_class: type[Environment], *args: Any, **kwargs: Any) -> Environment:
        earlier = kwargs.pop("requires_success_in", None)
        return environment_create(actor=None, after=earlier.name if earlier else "", **kwargs)


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: f"1.0.{n}")
    ref = factory.LazyAttribute(lambda o: f"v{o.version}")
    state = Release.State.FINISHED
    outcome = Release.Outcome.BUILT
    built_at = factory.LazyFunction(timezone.now)


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    release = factory.SubFactory(ReleaseFactory)
    environment = factory.SubFactory(EnvironmentFactory)
    state = Deployment.State.FINISHED
    outcome = Deployment.Outcome.SUCCEEDED
