"""What a live page shows, in one short string: polled pages answer "not
modified" (304) while it stays the same, and cost a few index probes
instead of a page (DESIGN.md: live parts re-rendered only when they change).

A fingerprint covers every row the page shows that can change while it is
open: the release's build, its deployments and their approvals, its jobs
(their step and how many log lines they have; not their heartbeat, which
beats every few seconds whether or not anything happened), its audit
timeline, and the settings behind the buttons (environments, credentials,
projects, people's roles: whatever changes them is audited).
"""

from __future__ import annotations

import hashlib

from django.db.models import Max

from releases.models import Approval, AuditEvent, Deployment, Job, Release

# Audit events of the things that decide which buttons a page offers.
SETTINGS_OBJECTS = ("environment", "credential", "project", "user", "environmentchange")


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def settings_version() -> int:
    """The newest audit event about environments, credentials, projects or people."""
    return AuditEvent.objects.filter(object_type__in=SETTINGS_OBJECTS).aggregate(n=Max("id"))["n"] or 0


def release_fingerprint(release: Release, *, shown_job: str = "") -> str:
    deployments = list(Deployment.objects.filter(release=release).order_by("id").values_list("id", "state", "outcome"))
    approvals = Approval.objects.filter(deployment__release=release).aggregate(n=Max("id"))["n"]
    jobs = list(
        Job.objects.filter(release=release).order_by("id").values_list("id", "state", "outcome", "step", "log_lines")
    )
    timeline = release.audit_events.aggregate(n=Max("id"))["n"]
    return _digest(
        release.pk,
        release.state,
        release.outcome,
        deployments,
        approvals,
        jobs,
        timeline,
        settings_version(),
        shown_job,
    )


def deployment_fingerprint(deployment: Deployment) -> str:
    approvals = list(Approval.objects.filter(deployment=deployment).order_by("id").values_list("id", "decision"))
    return _digest(deployment.pk, deployment.state, deployment.outcome, deployment.reason, approvals)
