"""What a live page shows, in one short string: polled pages answer "not
modified" (304) while it stays the same, at the cost of one query instead
of a page.

A fingerprint covers every row the page shows that can change while it is
open: the release's build, its deployments and their approvals, its jobs
(their step and how many log lines they have; not their heartbeat, which
beats every few seconds whether or not anything happened), its audit
timeline, and the settings behind the buttons (environments, credentials,
projects, people's roles: whatever changes them is audited).
"""

from __future__ import annotations

import hashlib

from django.db import connection
from django.db.models import Max
from packaging.utils import canonicalize_name

from releases.models import Approval, AuditEvent, Deployment, Job, Project, Release

# Audit events of the things that decide which buttons a page offers.
SETTINGS_OBJECTS = ("environment", "credential", "project", "user", "environmentchange")


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _release_sql() -> str:
    """Every row a release page's live part depends on, in one round trip
    (portable SQL: PostgreSQL and SQLite alike). Only the models' own table
    names go into the text; every value is a parameter."""
    release, project = Release._meta.db_table, Project._meta.db_table
    deployment, job = Deployment._meta.db_table, Job._meta.db_table
    approval, audit = Approval._meta.db_table, AuditEvent._meta.db_table
    the_release = (
        f"(SELECT r.id FROM {release} r JOIN {project} p ON p.id = r.project_id WHERE p.name = %s AND r.version = %s)"  # noqa: S608
    )
    settings_types = ", ".join("%s" for _ in SETTINGS_OBJECTS)
    return f"""
        SELECT 'r', r.id, r.state, r.outcome, '', 0 FROM {release} r WHERE r.id = {the_release}
        UNION ALL SELECT 'd', d.id, d.state, d.outcome, '', 0 FROM {deployment} d WHERE d.release_id = {the_release}
        UNION ALL SELECT 'j', j.id, j.state, j.outcome, j.step, j.log_lines FROM {job} j WHERE j.release_id = {the_release}
        UNION ALL SELECT 'a', MAX(a.id), '', '', '', 0 FROM {approval} a
            JOIN {deployment} d ON d.id = a.deployment_id WHERE d.release_id = {the_release}
        UNION ALL SELECT 't', MAX(e.id), '', '', '', 0 FROM {audit} e WHERE e.release_id = {the_release}
        UNION ALL SELECT 's', MAX(e.id), '', '', '', 0 FROM {audit} e WHERE e.object_type IN ({settings_types})
    """  # noqa: S608


def release_fingerprint(project_name: str, version: str, *, shown_job: str = "") -> str | None:
    """The fingerprint of the release page's live part; None when there is no such release."""
    name = canonicalize_name(project_name)
    with connection.cursor() as cursor:
        cursor.execute(_release_sql(), [name, version] * 5 + list(SETTINGS_OBJECTS))
        rows = sorted(cursor.fetchall(), key=lambda row: (row[0], row[1] or 0))
    if not any(row[0] == "r" for row in rows):
        return None
    return _digest(rows, shown_job)


def deployment_fingerprint(deployment: Deployment) -> str:
    approvals = list(Approval.objects.filter(deployment=deployment).order_by("id").values_list("id", "decision"))
    return _digest(deployment.pk, deployment.state, deployment.outcome, deployment.reason, approvals)


def settings_version() -> int:
    """The newest audit event about environments, credentials, projects or people."""
    return AuditEvent.objects.filter(object_type__in=SETTINGS_OBJECTS).aggregate(n=Max("id"))["n"] or 0
