"""From a git ref to a deployment in one request: the release is created
(and its build queued) when it does not exist yet, then published."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from releases.actors import Actor
from releases.models import Deployment, Environment, Project, Release
from releases.services.deployments import deployment_request
from releases.services.releases import release_at_ref


@dataclass(frozen=True)
class Publication:
    release: Release
    deployment: Deployment
    release_created: bool


def release_publish(*, project: Project, version: str, ref: str, environment: Environment, actor: Actor) -> Publication:
    """Send version ``version`` of ``project`` to ``environment``, built from ``ref`` first if need be.

    1. Find the release at that ref, or create it and queue its build
       (``release_at_ref``: ``release_create``'s checks; an existing
       release must come from that very ref).
    2. Request the deployment. A release still building leaves it queued;
       the upload is queued in the transaction that records the build, so
       nothing waits between the two.

    Both steps are one transaction: a deployment the environment refuses
    leaves no release behind, and no build runs.
    """
    with transaction.atomic():
        release, created = release_at_ref(project=project, version=version, ref=ref, actor=actor)
        deployment = deployment_request(release=release, environment=environment, actor=actor)
    return Publication(release=release, deployment=deployment, release_created=created)
