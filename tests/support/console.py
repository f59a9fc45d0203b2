"""People with roles, and rows for the console's page tests."""

from __future__ import annotations

import factory
from django.contrib.auth.models import User
from django.utils import timezone

from releases.models import Deployment, Environment, Project, Release
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
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"pkg-{n}")
    source = "https://example.org/pkg.git"


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment

    name = factory.Sequence(lambda n: f"env-{n}")
    title = factory.LazyAttribute(lambda o: o.name.replace("-", " ").title())
    upload_url = "http://127.0.0.1:1/upload/"
    index_url = "http://127.0.0.1:1/simple/"
    position = factory.Sequence(lambda n: n)


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: f"1.0.{n}")
    ref = factory.LazyAttribute(lambda o: f"v{o.version}")
    build_state = Release.BuildState.BUILT
    built_at = factory.LazyFunction(timezone.now)


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    release = factory.SubFactory(ReleaseFactory)
    environment = factory.SubFactory(EnvironmentFactory)
    status = Deployment.Status.SUCCEEDED
