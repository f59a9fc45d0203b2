"""People with roles, and rows for the console's page tests."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import factory
from django.contrib.auth.models import User

from releases.models import Deployment, Environment, Job, Project, Release
from releases.services.deployments import deployment_request
from releases.services.jobs import job_cancel, job_claim, job_finish
from releases.services.lifecycle import DEPLOYMENT, transition
from releases.services.projects import environment_create, project_create
from releases.services.releases import (
    release_create,
    release_record_build,
    release_record_build_failure,
    release_start_build,
    release_store_files,
)
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
    """A release made by ``release_create``; built (the default) or failed,
    its build job claimed and finished through the services as a worker's
    would be; building (``state=Release.State.BUILDING``: its job claimed
    here, so that no worker runs it); or waiting to build (``QUEUED``: its
    build job is sent, and a live worker runs it)."""

    class Meta:
        model = Release

    project = factory.SubFactory(ProjectFactory)
    version = factory.Sequence(lambda n: f"1.0.{n}")
    ref = factory.LazyAttribute(lambda o: f"v{o.version}")
    state = Release.State.FINISHED
    outcome = Release.Outcome.BUILT
    commit = "c0ffee" * 6 + "c0ff"
    # The built files, by name: stored through the services with their digests.
    files: dict[str, bytes] = {}

    @classmethod
    def _create(cls, model_class: type[Release], *args: Any, **kwargs: Any) -> Release:
        state, outcome, commit = kwargs.pop("state"), kwargs.pop("outcome"), kwargs.pop("commit")
        files = kwargs.pop("files")
        release = release_create(actor=None, **kwargs)
        if state == Release.State.QUEUED:
            return release
        job = release.jobs.get(kind=Job.Kind.BUILD)
        claim = job_claim(job.pk, worker="factory")
        assert claim is not None
        release_start_build(release)
        if state == Release.State.BUILDING:  # its build job is running (here), so no worker takes it
            release.refresh_from_db()
            return release
        if outcome == Release.Outcome.BUILT:
            with tempfile.TemporaryDirectory() as folder:
                paths = []
                for filename, content in files.items():
                    path = Path(folder) / filename
                    path.write_bytes(content)
                    paths.append(path)
                artifacts = release_store_files(release, paths)
            job_finish(claim, outcome=Job.Outcome.SUCCEEDED)
            release_record_build(release, commit=commit, artifacts=artifacts, warnings=[])
        else:
            job_finish(claim, outcome=Job.Outcome.FAILED, reason="the build failed (made by a test)")
            release_record_build_failure(release, "the build failed (made by a test)")
        release.refresh_from_db()
        return release


def _path(start: str, state: str, outcome: str) -> list[tuple[str, str]]:
    """The moves from ``start`` to (``state``, ``outcome``) by the deployment's
    own table of moves, shortest first."""
    if start == state and not outcome:
        return []
    moves = DEPLOYMENT.moves
    paths: list[tuple[str, list[tuple[str, str]]]] = [(start, [])]
    seen = {start}
    while paths:
        here, path = paths.pop(0)
        for to, outcomes in moves.get(here, {}).items():
            if to == state and (outcome in outcomes or (not outcomes and not outcome)):
                return [*path, (to, outcome)]
            if to not in seen and to != Deployment.State.FINISHED:
                seen.add(to)
                paths.append((to, [*path, (to, "")]))
    raise AssertionError(f"no way from {start} to {state}/{outcome}")


class DeploymentFactory(factory.django.DjangoModelFactory):
    """A deployment asked for through ``deployment_request`` and moved to
    ``state`` (and ``outcome``) by ``lifecycle.transition``, along the moves
    the lifecycle allows; jobs it would have run are cancelled."""

    class Meta:
        model = Deployment

    release = factory.SubFactory(ReleaseFactory)
    environment = factory.SubFactory(EnvironmentFactory)
    state = Deployment.State.FINISHED
    outcome = Deployment.Outcome.SUCCEEDED
    # Asked for by the console itself where no approval is needed; by a
    # releaser of its own where one is (a push that needs approval needs a
    # person who asked).
    requested_by = None

    @classmethod
    def _create(cls, model_class: type[Deployment], *args: Any, **kwargs: Any) -> Deployment:
        environment = kwargs["environment"]
        actor = kwargs.get("requested_by")
        if actor is None and environment.required_approvals > 0:
            actor = person_with_role("releaser")
        deployment = deployment_request(release=kwargs["release"], environment=environment, actor=actor)
        for to, outcome in _path(deployment.state, kwargs["state"], kwargs["outcome"]):
            transition(deployment, to, outcome=outcome, reason="" if outcome in ("", "succeeded") else "made by a test")
        for job in deployment.jobs.filter(state=Job.State.QUEUED):
            job_cancel(job, reason="made by a test")
        return deployment
