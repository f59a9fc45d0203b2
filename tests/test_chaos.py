"""Faults in the middle of releases: a worker killed with SIGKILL at random
points of build, upload and verify; Redis shut down without saving and
started again; PostgreSQL restarted during a deployment.

What must hold after each: every deployment ends (succeeded, or failed with
a reason) within the reaper's period of the fault; no file reaches the index
twice or is overwritten; no job is left queued or running; workers consume
again soon after Redis is back. The tests run on a Redis, a PostgreSQL
cluster and worker and beat processes of their own, shared by the module
(tests/support/chaos.py); ``make chaos`` runs the long forms (``-m slow``),
``make test`` the short ones. A summary table is printed at the end of the module.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone

from releases.clients.index import list_files
from releases.models import Deployment, Job, Release
from tests.support.chaos import ALIAS, PERIODS, ChaosStack, read, reaper_period, wait_until
from tests.support.devpi import DevpiServer, IndexAccount
from tests.support.sample import SampleRepo

# How long into each kind of job a kill may land (about its usual length).
SPREAD = {Job.Kind.BUILD: 1.2, Job.Kind.UPLOAD: 0.6, Job.Kind.VERIFY: 0.2}
# A deployment hit by one fault must end within this: its own work, plus
# the reaper's period for each attempt it may lose.
WORK_SECONDS = 60.0
RESULTS: list[dict[str, object]] = []


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker) -> Iterator[ChaosStack]:
    # Outside pytest's numbered temporary folders, which a concurrent
    # session may prune while our PostgreSQL cluster still lives there.
    root = Path(tempfile.mkdtemp(prefix="console-chaos-"))
    with django_db_blocker.unblock():
        chaos = ChaosStack(root)
        try:
            chaos.start()
            yield chaos
        finally:
            chaos.stop()
            shutil.rmtree(root, ignore_errors=True)


@dataclass
class Target:
    """A project and its sandbox index inside the chaos console."""

    name: str
    repo: SampleRepo
    account: IndexAccount
    environment: str
    versions: int = 0

    def next_version(self) -> str:
        self.versions += 1
        return f"1.0.{self.versions}"


def make_target(stack: ChaosStack, devpi: DevpiServer, tmp_path: Path, name: str) -> Target:
    repo = SampleRepo(tmp_path / name, name=name)
    account = devpi.new_index()
    token = tmp_path / f"{name}.token"
    token.write_text(account.password)
    stack.manage("project_add", name, "--source", str(repo.path))
    environment = f"{name}-sandbox"
    stack.manage(
        "environment_add",
        environment,
        "--upload-url",
        account.upload_url,
        "--index-url",
        account.simple_url,
        "--username",
        account.user,
        "--token-file",
        str(token),
    )
    return Target(name, repo, account, environment)


def release_and_publish(stack: ChaosStack, target: Target) -> int:
    """Commit and tag a new version, create its release and ask to publish it."""
    version = target.next_version()
    target.repo.commit_version(version, tag=f"v{version}")
    stack.manage("release_create", target.name, version, "--ref", f"v{version}")
    stack.manage("publish", target.name, version, "--to", target.environment)
    return read(lambda: Release.objects.using(ALIAS).get(project__name=target.name, version=version).pk)


def wait_running(stack: ChaosStack, release_id: int, kind: str | None = None) -> Job:
    """The release's job (of ``kind``, else any) once a worker runs it.

    Call it right after ``stack.worker_held()``: the job cannot have
    started, and ended, before this looks. Without a running job in time,
    fail with the release's jobs and the worker's log tail."""

    def running() -> Job | None:
        jobs = Job.objects.using(ALIAS).filter(release_id=release_id, state=Job.State.RUNNING)
        return (jobs.filter(kind=kind) if kind else jobs).first()

    found = wait_until(running, timeout=120, interval=0.02)
    assert found is not None, (
        f"no {kind or 'job'} started for release {release_id}; jobs: "
        f"{read(lambda: list(Job.objects.using(ALIAS).filter(release_id=release_id).values('kind', 'state', 'outcome', 'error')))}; "
        f"worker log tail:\n{stack.worker.log_text()[-3000:]}"
    )
    return found


def deadline_after_fault() -> float:
    return WORK_SECONDS + int(PERIODS["JOB_MAX_ATTEMPTS"]) * reaper_period()


def outcome(devpi: DevpiServer, target: Target, release_id: int, timeout: float) -> dict[str, object]:
    """Wait for the release's deployment to end, then check the index and the jobs."""
    started = time.monotonic()

    def final() -> Deployment | None:
        found = Deployment.objects.using(ALIAS).filter(release_id=release_id).first()
        return found if found is not None and found.state == Deployment.State.FINISHED else None

    deployment = wait_until(final, timeout)
    ended_after = time.monotonic() - started
    release = read(lambda: Release.objects.using(ALIAS).get(pk=release_id))
    artifacts = read(lambda: list(release.artifacts.using(ALIAS).all()))
    jobs = read(lambda: list(Job.objects.using(ALIAS).filter(release_id=release_id)))
    listed = list_files(target.account.simple_url, target.name)
    stored = {a.filename: devpi.stored_count(target.account, a.filename) for a in artifacts}
    return {
        "version": release.version,
        "status": deployment.outcome if deployment else "NOT ENDED",
        "reason": deployment.reason if deployment else "",
        "ended_after": round(ended_after, 1),
        "attempts": max((j.attempts for j in jobs), default=0),
        "stuck_jobs": [j.pk for j in jobs if j.state != Job.State.FINISHED],
        "max_stored": max(stored.values(), default=0),
        "overwritten": [
            a.filename for a in artifacts if a.filename in listed and listed[a.filename].sha256 != a.sha256
        ],
        "succeeded_not_listed": bool(
            deployment
            and deployment.outcome == Deployment.Outcome.SUCCEEDED
            and any(a.filename not in listed for a in artifacts)
        ),
    }


def assert_outcomes_hold(rows: list[dict[str, object]]) -> None:
    for row in rows:
        assert row["status"] in Deployment.Outcome.values and row["status"], f"a deployment did not end: {row}"
        assert row["status"] == Deployment.Outcome.SUCCEEDED or row["reason"], f"failed without a reason: {row}"
        assert row["stuck_jobs"] == [], f"jobs left queued or running: {row}"
        assert row["max_stored"] <= 1, f"a file was stored twice on the index: {row}"
        assert row["overwritten"] == [], f"a file on the index is not the one built: {row}"
        assert not row["succeeded_not_listed"], f"succeeded but the index lacks a file: {row}"


def kill_runs(stack: ChaosStack, devpi: DevpiServer, target: Target, kinds: list[str], seed: int) -> list[dict]:
    """For each kind: start a release, SIGKILL the worker at a random moment
    of that kind's job, start a new worker, and see how the deployment ends."""
    rng = random.Random(seed)
    spread = dict(SPREAD)
    rows = []
    for kind in kinds:
        with stack.worker_held():
            release_id = release_and_publish(stack, target)
        running = wait_running(stack, release_id, kind)
        time.sleep(rng.uniform(0, spread[kind]))
        at = read(lambda pk=running.pk: Job.objects.using(ALIAS).get(pk=pk))
        point = at.step or at.state if at.state == Job.State.RUNNING else f"after {kind} ended"
        stack.restart_worker()
        row = outcome(devpi, target, release_id, deadline_after_fault())
        row.update(scenario="SIGKILL worker", fault=f"{kind}: {point}"[:60])
        # Aim the next kill within this kind's real length (the last attempt ran it whole).
        finished = read(lambda pk=running.pk: Job.objects.using(ALIAS).get(pk=pk))
        if finished.duration_seconds:
            spread[kind] = 0.8 * finished.duration_seconds
        rows.append(row)
        RESULTS.append(row)
    return rows


def test_a_worker_killed_during_build_upload_or_verify_loses_nothing(stack, devpi, tmp_path):
    target = make_target(stack, devpi, tmp_path, "chaos-kill")
    rows = kill_runs(stack, devpi, target, [Job.Kind.BUILD, Job.Kind.UPLOAD, Job.Kind.VERIFY], seed=7)
    assert_outcomes_hold(rows)


@pytest.mark.slow
def test_thirty_workers_killed_at_random_points_lose_nothing(stack, devpi, tmp_path):
    target = make_target(stack, devpi, tmp_path, "chaos-kill-many")
    kinds = [Job.Kind.BUILD, Job.Kind.UPLOAD, Job.Kind.VERIFY] * 10
    rows = kill_runs(stack, devpi, target, kinds, seed=int(time.time()))
    assert_outcomes_hold(rows)
    assert sum(row["status"] == Deployment.Outcome.SUCCEEDED for row in rows) == len(rows)


def redis_outage(stack: ChaosStack, devpi: DevpiServer, target: Target, down_for: float) -> list[dict]:
    """Two releases in flight (one running, one queued), then Redis shut
    down without saving, started again, and the time until a worker takes a
    job again."""
    with stack.worker_held():
        first = release_and_publish(stack, target)
        second = release_and_publish(stack, target)
    wait_running(stack, first)
    stack.redis.shutdown_nosave()
    time.sleep(down_for)
    stack.redis.start()
    back = timezone.now()
    started = time.monotonic()
    claimed = wait_until(
        lambda: Job.objects.using(ALIAS).filter(started_at__gt=back).exists(), timeout=120, interval=0.1
    )
    consumed_after = round(time.monotonic() - started, 1) if claimed else None
    rows = []
    for release_id in (first, second):
        row = outcome(devpi, target, release_id, deadline_after_fault())
        row.update(
            scenario="Redis shutdown nosave", fault=f"down {down_for:.0f} s; consumed again after {consumed_after} s"
        )
        row["consumed_after"] = consumed_after
        rows.append(row)
        RESULTS.append(row)
    return rows


def test_workers_consume_again_after_redis_is_shut_down_and_started(stack, devpi, tmp_path):
    target = make_target(stack, devpi, tmp_path, "chaos-redis")
    rows = redis_outage(stack, devpi, target, down_for=3)
    assert_outcomes_hold(rows)
    assert rows[0]["consumed_after"] is not None and rows[0]["consumed_after"] <= 60


@pytest.mark.slow
def test_repeated_redis_outages_lose_nothing(stack, devpi, tmp_path):
    target = make_target(stack, devpi, tmp_path, "chaos-redis-many")
    rows = []
    for down_for in (1, 5, 10):
        rows += redis_outage(stack, devpi, target, down_for=down_for)
    assert_outcomes_hold(rows)
    assert all(row["consumed_after"] is not None and row["consumed_after"] <= 60 for row in rows)


def postgres_restart(stack: ChaosStack, devpi: DevpiServer, target: Target, kind: str) -> dict:
    with stack.worker_held():
        release_id = release_and_publish(stack, target)
    wait_running(stack, release_id, kind)
    stack.postgres.restart(down_for=2)
    row = outcome(devpi, target, release_id, deadline_after_fault())
    row.update(scenario="PostgreSQL restart", fault=f"during {kind}, down 2 s")
    RESULTS.append(row)
    return row


def test_a_deployment_ends_after_postgresql_restarts_during_its_upload(stack, devpi, tmp_path):
    target = make_target(stack, devpi, tmp_path, "chaos-postgres")
    row = postgres_restart(stack, devpi, target, Job.Kind.UPLOAD)
    assert_outcomes_hold([row])


@pytest.mark.slow
def test_postgresql_restarts_during_build_upload_and_verify_lose_nothing(stack, devpi, tmp_path):
    target = make_target(stack, devpi, tmp_path, "chaos-postgres-many")
    rows = [postgres_restart(stack, devpi, target, kind) for kind in (Job.Kind.BUILD, Job.Kind.UPLOAD, Job.Kind.VERIFY)]
    assert_outcomes_hold(rows)


def print_summary(write: Callable[[str], object]) -> None:
    """The table of every faulted deployment (called at the end of the session)."""
    if not RESULTS:
        return
    header = f"{'scenario':<22} {'fault':<60} {'version':<8} {'status':<10} {'ended s':>7} {'tries':>5} {'stored':>6}"
    write("")
    write("chaos summary")
    write(header)
    write("-" * len(header))
    for row in RESULTS:
        write(
            f"{row['scenario']:<22} {row['fault']!s:<60} {row['version']!s:<8} {row['status']!s:<10} "
            f"{row['ended_after']!s:>7} {row['attempts']!s:>5} {row['max_stored']!s:>6}"
        )
    ended = [row for row in RESULTS if row["status"] in Deployment.Outcome.values and row["status"]]
    succeeded = sum(row["status"] == Deployment.Outcome.SUCCEEDED for row in RESULTS)
    write(
        f"chaos: {len(RESULTS)} deployments under faults, {len(ended)} ended, {succeeded} succeeded, "
        f"{sum(row['max_stored'] > 1 for row in RESULTS)} files stored twice, "
        f"{sum(bool(row['stuck_jobs']) for row in RESULTS)} with stuck jobs"
    )
