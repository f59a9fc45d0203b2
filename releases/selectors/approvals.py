"""The approvals pages: the requests a person may decide on, and what the
review of one deployment shows (files and digests, the earlier
environment's verification, what changed since the last release)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from releases.clients import artifacts
from releases.clients.artifacts import ArtifactStorageError
from releases.models import APPROVE_PERMISSION, Approval, Artifact, Deployment, DeploymentFile, Release


def deployments_awaiting(user: User) -> QuerySet[Deployment]:
    """Pending requests ``user`` may decide on and has not decided on yet."""
    if not (user.is_active and user.has_perm(APPROVE_PERMISSION)):
        return Deployment.objects.none()
    return (
        Deployment.objects.filter(state=Deployment.State.PENDING_APPROVAL, expires_at__gt=timezone.now())
        .exclude(requested_by=user)
        .exclude(approvals__approver=user)
        .select_related("release__project", "environment", "requested_by")
        .order_by("expires_at", "id")
    )


def deployments_requested_by(user: User) -> QuerySet[Deployment]:
    """``user``'s own requests that still wait for approval, oldest first."""
    return (
        Deployment.objects.filter(state=Deployment.State.PENDING_APPROVAL, requested_by=user)
        .select_related("release__project", "environment")
        .annotate(approvals_given_count=Count("approvals", filter=Q(approvals__decision=Approval.Decision.APPROVE)))
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class DependencyChange:
    name: str
    before: str
    after: str


@dataclass
class ApprovalReview:
    """Everything the approval page shows about one deployment."""

    deployment: Deployment
    artifacts: list[Artifact]
    digests: list[str]
    earlier: Deployment | None
    earlier_files: dict[str, str]
    earlier_matches: bool
    previous: Release | None
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    dependencies: list[str] | None = None
    dependency_changes: list[DependencyChange] = field(default_factory=list)
    approvals: list[Approval] = field(default_factory=list)


def approval_review(deployment: Deployment) -> ApprovalReview:
    """The files and digests, the earlier environment's verification, and what changed since the last release."""
    release = deployment.release
    artifacts = list(release.artifacts.all())
    digests = sorted(a.sha256 for a in artifacts)
    earlier = None
    earlier_files: dict[str, str] = {}
    if deployment.environment.requires_success_in_id is not None:
        earlier = (
            Deployment.objects.filter(
                release=release,
                environment_id=deployment.environment.requires_success_in_id,
                outcome=Deployment.Outcome.SUCCEEDED,
            )
            .select_related("environment")
            .order_by("-finished_at", "-id")
            .first()
        )
        if earlier is not None:
            # What that index served, file by file, when it was verified there.
            earlier_files = {
                f.artifact.filename: f.index_sha256
                for f in earlier.files.select_related("artifact")
                if f.state == DeploymentFile.State.VERIFIED
            }
    previous = release_previous(release)
    review = ApprovalReview(
        deployment=deployment,
        artifacts=artifacts,
        digests=digests,
        earlier=earlier,
        earlier_files=earlier_files,
        earlier_matches=bool(earlier_files) and earlier_files == {a.filename: a.sha256 for a in artifacts},
        previous=previous,
        approvals=list(deployment.approvals.select_related("approver")),
    )
    current_requirements = release_requirements(release)
    review.dependencies = current_requirements
    if previous is not None:
        before = {_file_shape(a.filename, previous.version) for a in previous.artifacts.all()}
        after = {_file_shape(a.filename, release.version) for a in artifacts}
        review.files_added = sorted(after - before)
        review.files_removed = sorted(before - after)
        previous_requirements = release_requirements(previous)
        if current_requirements is not None and previous_requirements is not None:
            review.dependency_changes = _dependency_changes(previous_requirements, current_requirements)
    return review


def release_previous(release: Release) -> Release | None:
    """The project's last built release before ``release``."""
    return (
        Release.objects.filter(
            project=release.project, outcome=Release.Outcome.BUILT, created_at__lt=release.created_at
        )
        .exclude(pk=release.pk)
        .order_by("-created_at", "-id")
        .first()
    )


def _file_shape(filename: str, version: str) -> str:
    """A filename with its version replaced, so that releases can be compared."""
    return filename.replace(version, "{version}")


def release_requirements(release: Release) -> list[str] | None:
    """Requires-Dist of the release's stored wheel, or None when it has no readable wheel."""
    wheel = release.artifacts.filter(kind=Artifact.Kind.WHEEL).order_by("filename").first()
    if wheel is None:
        return None
    try:
        raw = artifacts.read_wheel(wheel.path).metadata
    except ArtifactStorageError:
        return None
    # Reference: https://packaging.pypa.io/en/stable/metadata.html
    metadata = Metadata.from_email(raw, validate=False)
    return sorted(str(requirement) for requirement in metadata.requires_dist or [])


def _dependency_changes(before: list[str], after: list[str]) -> list[DependencyChange]:
    def by_name(requirements: list[str]) -> dict[str, str]:
        named: dict[str, list[str]] = {}
        for text in requirements:
            named.setdefault(canonicalize_name(Requirement(text).name), []).append(text)
        return {name: "; ".join(sorted(texts)) for name, texts in named.items()}

    old, new = by_name(before), by_name(after)
    return [
        DependencyChange(name, old.get(name, ""), new.get(name, ""))
        for name in sorted(old.keys() | new.keys())
        if old.get(name) != new.get(name)
    ]
