"""The console's pages at 10,000 releases: the number of queries per page does
not grow with the data. Page times are printed (run with -s), not asserted."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from releases.models import Artifact, AuditEvent, Deployment, Job, Release
from tests.support.console import EnvironmentFactory, ProjectFactory, person_with_role

pytestmark = pytest.mark.django_db

PROJECTS = 20
RELEASES = 10_000
LOG_LINES = 1_000_000


def seed(projects, environments, user, *, per_project: int, start: int = 0) -> None:
    """Releases, each deployed to the first environment, every tenth to the others (bulk, fast)."""
    now = timezone.now()
    releases = [
        Release(
            project=project,
            version=f"1.{start + n}.0",
            ref=f"v1.{start + n}.0",
            state=Release.State.FINISHED,
            outcome=Release.Outcome.BUILT,
            created_by=user,
            built_at=now,
        )
        for project in projects
        for n in range(per_project)
    ]
    Release.objects.bulk_create(releases, batch_size=2000)
    outcomes = [o for o in Deployment.Outcome if o]
    deployments = []
    for i, release in enumerate(releases):
        for j, environment in enumerate(environments):
            if j == 0 or i % 10 == 0:
                deployments.append(
                    Deployment(
                        release=release,
                        project=release.project,
                        environment=environment,
                        state=Deployment.State.FINISHED,
                        outcome=Deployment.Outcome.SUCCEEDED if i % 7 else outcomes[i % len(outcomes)],
                        requested_by=user,
                        required_approvals=environment.required_approvals,
                        finished_at=now,
                    )
                )
    # Active statuses must stay one per release and environment: they are.
    Deployment.objects.bulk_create(deployments, batch_size=2000)
    Deployment.objects.filter(pk__in=[d.pk for d in deployments]).update(created_at=now - timedelta(days=1))
    head = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    AuditEvent.objects.bulk_create(
        AuditEvent(
            id=head + k + 1,
            actor=user,
            actor_name=user.username,
            action="release.created",
            object_type="release",
            object_id=str(release.pk),
            release=release,
            data={"version": release.version},
            created_at=now,
            previous_hash="0" * 64,
            hash=f"{head + k + 1:064x}",
        )
        for k, release in enumerate(releases)
    )


def release_with_a_long_log(project, lines: int) -> Release:
    release = Release.objects.create(project=project, version="9.9.9", ref="v9.9.9", state="finished", outcome="built")
    for kind in ("sdist", "wheel"):
        Artifact.objects.create(
            release=release, filename=f"f-9.9.9.{kind}", kind=kind, size=1000, sha256="a" * 64, path=f"x/{kind}"
        )
    job = Job.objects.create(kind=Job.Kind.BUILD, release=release, state=Job.State.RUNNING, started_at=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO releases_joblogline (job_id, number, created_at, text) "
            "SELECT %s, n, now(), 'output line ' || n FROM generate_series(1, %s) AS n",
            [job.pk, lines],
        )
    Job.objects.filter(pk=job.pk).update(log_lines=lines)
    return release


def measure(client: Client, url: str) -> tuple[int, float]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    count = len(queries)  # read now: the next request clears the connection's log
    assert response.status_code == 200, url
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        client.get(url)
        timings.append(time.perf_counter() - started)
    return count, statistics.median(timings)


def test_queries_per_page_do_not_grow_with_ten_thousand_releases(capsys):
    user = person_with_role("releaser", username="bulk")
    client = Client()
    client.force_login(user)
    projects = [ProjectFactory(name=f"pkg-{n:02d}") for n in range(PROJECTS)]
    environments = [
        EnvironmentFactory(name="test-pypi", title="Test PyPI", position=0),
        EnvironmentFactory(name="pypi", title="PyPI", required_approvals=2, position=1),
        EnvironmentFactory(name="internal", title="Internal devpi", position=2),
    ]
    small = release_with_a_long_log(projects[0], 50)
    seed(projects, environments, user, per_project=2)
    urls = {
        "dashboard": reverse("releases:dashboard"),
        "history": reverse("releases:history"),
        "history, filtered": reverse("releases:history")
        + "?project=pkg-03&environment=test-pypi&status=succeeded&requested_by=bulk",
        "history, page 40": reverse("releases:history") + "?page=40",
        "project": reverse("releases:project", args=["pkg-00"]),
        "release (log tail)": reverse("releases:release", args=["pkg-00", small.version]),
    }
    before = {name: measure(client, url)[0] for name, url in urls.items() if name != "history, page 40"}

    seed(projects, environments, user, per_project=RELEASES // PROJECTS - 2, start=2)
    big = release_with_a_long_log(projects[1], LOG_LINES)
    urls["release (log tail)"] = reverse("releases:release", args=["pkg-01", big.version])
    urls["job log, earlier page"] = reverse("releases:job_log", args=[big.jobs.get().pk]) + "?before=500000"
    assert Release.objects.count() >= RELEASES
    after = {name: measure(client, url) for name, url in urls.items()}

    with capsys.disabled():
        print(
            f"\npage times at {Release.objects.count()} releases, {Deployment.objects.count()} deployments, "
            f"{LOG_LINES} log lines (median of 3):"
        )
        for name, (count, seconds) in after.items():
            print(f"  {name:24} {count:3} queries  {seconds * 1000:7.1f} ms")
    for name, count in before.items():
        assert after[name][0] == count, f"{name}: {count} queries with a few releases, {after[name][0]} with 10,000"
    assert after["history, page 40"][0] == before["history"]
    # A page's queries are a small fixed number (the release page also reads
    # the SBOM diff and the scan findings), whatever the size of the history.
    for count, _ in after.values():
        assert count <= 20
