"""From a git ref to a deployment in one request: the release is created
(and its build queued) when it does not exist yet, then published."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from releases.actors import Actor
from releases.models import Deployment, Environment, Project, Release
from releases.services.deployments import deployment_request
from releases.services.releases import release_create
from releases.validators import clean_ref, clean_version


@dataclass(frozen=True)
class Publication:
    release: Release
    deployment: Deployment
    release_created: bool


def release_publish(*, project: Project, version: str, ref: str, environment: Environment, actor: Actor) -> Publication:
    """Send version ``version`` of ``project`` to ``environment``, built from ``ref`` first if need be.

    1. Clean the version and the ref as ``release_create`` does.
    2. Find the release: an existing one must come from that very ref (a
       version is built once); a missing one is created, its build queued.
    3. Request the deployment. A release still building leaves it queued;
       the upload is queued in the transaction that records the build, so
       nothing waits between the two.

    Steps 2 and 3 are one transaction: a deployment the environment refuses
    leaves no release behind, and no build runs.
    """
    version = clean_version(version)
    ref = clean_ref(ref)
    with transaction.atomic():
        release = Release.objects.filter(project=project, version=version).first()
        created = release is None
        if release is None:
            release = release_create(project=project, version=version, ref=ref, actor=actor)
        elif release.ref != ref:
            raise ValidationError(
                f"{project.name} {version} exists already, from {release.ref!r}, not {ref!r}; "
                "a version is built once. Choose a new version for the new ref."
            )
        deployment = deployment_request(release=release, environment=environment, actor=actor)
    return Publication(release=release, deployment=deployment, release_created=created)
