"""Backpressure and fairness, as the rows decide them: a project runs at most
PROJECT_MAX_RUNNING_JOBS jobs at once, the rest wait queued and are sent
again when one of its jobs finishes; the reaper leaves a full project's
waiting jobs alone; the dashboard shows the queue. (tests/test_hosts.py
runs the same on two worker hosts.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from releases.models import AuditEvent, Job, Project, Release, Worker
from releases.services.jobs import job_claim, job_finish
from releases.services.reaper import jobs_reap
from tests.support.console import ProjectFactory, ReleaseFactory, person_with_role


def queued_build(project_name: str, version: str) -> Job:
    """A release of ``project_name`` whose build job waits (made by the services)."""
    project = Project.objects.filter(name=project_name).first() or ProjectFactory(name=project_name)
    release = ReleaseFactory(project=project, version=version, state=Release.State.QUEUED)
    return release.jobs.get(kind=Job.Kind.BUILD)


@pytest.fixture
def one_at_a_time(settings):
    settings.PROJECT_MAX_RUNNING_JOBS = 1


@pytest.mark.django_db
def test_a_job_over_its_projects_limit_stays_queued_while_another_projects_job_is_claimed(one_at_a_time):
    first, second = queued_build("busy-pkg", "1.0.1"), queued_build("busy-pkg", "1.0.2")
    other = queued_build("quiet-pkg", "2.0.0")

    assert job_claim(first.pk, worker="host-a") is not None
    assert job_claim(second.pk, worker="host-b") is None
    assert job_claim(other.pk, worker="host-b") is not None

    second.refresh_from_db()
    assert second.state == Job.State.QUEUED
    assert second.attempts == 0
    assert second.step == "waiting: its project runs 1 of the 1 jobs it may run at once"
    # Refused, not claimed: no audit event says it ran.
    assert not AuditEvent.objects.filter(action="job.running", object_id=str(second.pk)).exists()


@pytest.mark.django_db
def test_a_finishing_job_sends_its_projects_oldest_waiting_job_which_then_runs(
    one_at_a_time, django_capture_on_commit_callbacks
):
    first = queued_build("busy-pkg", "1.0.1")
    waiting = [queued_build("busy-pkg", f"1.0.{n}") for n in (2, 3)]
    claim = job_claim(first.pk, worker="host-a")
    assert claim is not None
    assert job_claim(waiting[0].pk) is None

    with django_capture_on_commit_callbacks() as sent:
        job_finish(claim, outcome=Job.Outcome.SUCCEEDED)

    # One message: the oldest of the project's waiting jobs (the limit is one).
    assert len(sent) == 1
    assert job_claim(waiting[0].pk, worker="host-b") is not None
    assert job_claim(waiting[1].pk, worker="host-b") is None


@pytest.mark.django_db
def test_the_reaper_resends_lost_jobs_but_not_those_of_a_project_running_all_it_may(one_at_a_time):
    running = queued_build("busy-pkg", "1.0.1")
    assert job_claim(running.pk, worker="host-a") is not None
    behind = queued_build("busy-pkg", "1.0.2")
    lost = queued_build("quiet-pkg", "2.0.0")
    long_ago = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk__in=[behind.pk, lost.pk]).update(sent_at=long_ago, queued_at=long_ago)

    report = jobs_reap()

    assert report.resent == [lost.pk]
    # Sent again, yet still waiting since it was queued: the wait the dashboard shows.
    lost.refresh_from_db()
    assert lost.sent_at > long_ago
    assert lost.queued_at == long_ago
    # A second reaper right after (another host) sends nothing more.
    assert jobs_reap().resent == []


@pytest.mark.django_db
def test_the_dashboard_shows_jobs_waiting_the_oldest_wait_and_the_workers_alive(client: Client):
    first = queued_build("busy-pkg", "1.0.1")
    queued_build("busy-pkg", "1.0.2")
    Job.objects.filter(pk=first.pk).update(queued_at=timezone.now() - timedelta(minutes=7, seconds=5))
    now = timezone.now()
    Worker.objects.create(name="worker-1@host-a", hostname="host-a", pid=10, started_at=now, seen_at=now)
    Worker.objects.create(name="worker-1@host-b", hostname="host-b", pid=11, started_at=now, seen_at=now)
    # A host that died an hour ago is not alive.
    Worker.objects.create(
        name="worker-1@host-c", hostname="host-c", pid=12, started_at=now, seen_at=now - timedelta(hours=1)
    )
    client.force_login(person_with_role("viewer"))

    text = " ".join(client.get("/").content.decode().split())

    assert "Job queue" in text
    assert "Jobs waiting</dt> <dd>2, the oldest for 7 min 5 s" in text
    assert "Workers alive</dt> <dd>2 on host-a, host-b</dd>" in text
    assert "host-c" not in text


@pytest.mark.django_db
def test_the_dashboard_says_when_jobs_wait_and_no_worker_is_alive(client: Client):
    queued_build("busy-pkg", "1.0.1")
    client.force_login(person_with_role("viewer"))

    text = " ".join(client.get("/").content.decode().split())

    assert "Workers alive</dt> <dd>0 <strong>(no worker is alive to run the jobs waiting)</strong>" in text
