"""Two worker hosts that share nothing but the services.

Each host is a network namespace of its own, with its own host name, var
folder, job folders and tool cache, the other host's folders hidden from it
(tests/support/hosts.py). Both reach one PostgreSQL, one Redis (with a
password), one S3 API server (moto) for the artifacts, and a devpi index;
sources come from a git daemon. On them:

* a release is built on one host and uploaded and verified from the other,
  its bytes passing through the object store only;
* a host is SIGKILLed (worker and beat) in the middle of an upload, and the
  other host's beat, reaper and worker finish its jobs, no file sent twice;
* beat runs on both hosts and sends each schedule once, and hands over
  when the host holding the lock dies;
* reapers on both hosts at the same instant requeue and resend each job once;
* one project queueing ten releases does not starve another;
* a tampered object in the store is refused before anything is sent.

The run's figures (how long each part took, how many jobs each host ran)
are printed at the end of the session.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from django.db import connections
from django.utils import timezone

from releases.clients.index import list_files
from releases.models import Artifact, AuditEvent, Deployment, Job, Release, Worker
from tests.support.devpi import IndexAccount
from tests.support.hosts import ALIAS, PERIODS, HostsStack, network_namespaces_available
from tests.support.sample import SampleRepo

T = TypeVar("T")
FIGURES: list[tuple[str, str]] = []
# A beat's log line for each send (the console's log format: console/settings.py, LOGGING).
SEND_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO celery\.beat Scheduler: Sending due task (\S+)")

pytestmark = pytest.mark.skipif(bool(network_namespaces_available()), reason=network_namespaces_available() or "")


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker) -> Iterator[HostsStack]:
    # Outside pytest's numbered folders, which a concurrent session may prune.
    root = Path(tempfile.mkdtemp(prefix="console-hosts-"))
    with django_db_blocker.unblock():
        hosts = HostsStack(root)
        try:
            hosts.start()
            for part, seconds in hosts.timings.items():
                FIGURES.append((part, f"{seconds:.1f} s"))
            yield hosts
        finally:
            hosts.stop()
            shutil.rmtree(root, ignore_errors=True)


def wait_until(predicate: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def jobs(**filters: object) -> list[Job]:
    return list(Job.objects.using(ALIAS).filter(**filters).order_by("id"))


class Target:
    """A project served by the git daemon, and a devpi index to publish it to."""

    def __init__(self, stack: HostsStack, name: str) -> None:
        self.stack = stack
        self.name = name
        self.repo = SampleRepo(stack.root / "sources" / name, name=name)
        self.account = stack.devpi.new_index()
        self.environment = f"{name}-sandbox"
        token = stack.root / "web" / f"{name}.token"
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text(self.account.password)
        stack.manage("project_add", name, "--source", stack.git.url(name))
        stack.manage(
            "environment_add", self.environment, "--upload-url", self.account.upload_url,
            "--index-url", self.account.simple_url, "--username", self.account.user, "--token-file", str(token),
        )  # fmt: skip

    def tag(self, version: str) -> None:
        self.repo.commit_version(version, tag=f"v{version}")

    def release(self, version: str) -> Release:
        return Release.objects.using(ALIAS).get(project__name=self.name, version=version)

    def stored_counts(self, account: IndexAccount | None = None) -> dict[str, int]:
        """How many times the index stored each built file (devpi's own log)."""
        account = account or self.account
        release_files = Artifact.objects.using(ALIAS).filter(release__project__name=self.name)
        return {a.filename: self.stack.devpi.stored_count(account, a.filename) for a in release_files}


def deployment_of(release: Release) -> Deployment:
    return Deployment.objects.using(ALIAS).filter(release=release).latest("id")


def final(stack: HostsStack, release: Release, timeout: float = 120) -> Deployment:
    def ended() -> Deployment | None:
        found = Deployment.objects.using(ALIAS).filter(release=release).order_by("-id").first()
        return found if found is not None and found.state == Deployment.State.FINISHED else None

    deployment = wait_until(ended, timeout, interval=0.2)
    assert deployment is not None, f"the deployment of {release} did not end within {timeout} s\n{diagnosis(stack)}"
    return deployment


def diagnosis(stack: HostsStack) -> str:
    """The jobs that did not end, and the tail of each host's logs."""
    unfinished = [(j.pk, j.kind, j.state, j.attempts, j.worker, j.step) for j in jobs() if j.state != "finished"]
    logs = [
        f"--- {host.name} {part.role} ---\n{part.log_text()[-2500:]}"
        for host in stack.hosts
        for part in (host.worker, host.beat)
    ]
    return f"jobs not finished: {unfinished}\n" + "\n".join(logs)


def test_a_release_built_on_one_host_is_uploaded_and_verified_from_the_other(stack: HostsStack) -> None:
    host_a, host_b = stack.host("host-a"), stack.host("host-b")
    target = Target(stack, "across-pkg")
    target.tag("1.0.0")

    host_b.worker.stop()
    started = time.monotonic()
    stack.manage("release_create", target.name, "1.0.0", "--ref", "v1.0.0", "--wait")
    built_in = time.monotonic() - started
    host_a.worker.stop()
    host_b.start_worker()
    started = time.monotonic()
    stack.manage("publish", target.name, "1.0.0", "--to", target.environment, "--wait")
    published_in = time.monotonic() - started
    host_a.start_worker()

    release = target.release("1.0.0")
    deployment = deployment_of(release)
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED
    by_kind = {job.kind: job.worker for job in jobs(release=release)}
    # A job names its worker as role@host; each host runs every role here.
    assert by_kind[Job.Kind.BUILD] == "all@host-a"
    assert by_kind[Job.Kind.UPLOAD] == "all@host-b"
    assert by_kind[Job.Kind.VERIFY] == "all@host-b"
    # The bytes went through the object store alone: host-b cannot see
    # host-a's folders, and each file sits in the bucket under its digest.
    assert host_b.run(["ls", "-A", str(host_a.root)]).stdout == ""
    artifacts = list(release.artifacts.using(ALIAS).all())
    keys = {o["Key"] for o in stack.s3.client().list_objects_v2(Bucket=stack.bucket)["Contents"]}
    assert {a.path for a in artifacts} <= keys
    assert all(a.path == f"{target.name}/1.0.0/{a.sha256}/{a.filename}" for a in artifacts)
    listed = list_files(target.account.simple_url, target.name)
    assert {a.filename: a.sha256 for a in artifacts} == {name: f.sha256 for name, f in listed.items()}
    assert set(target.stored_counts().values()) == {1}
    # Both workers keep their heartbeat rows: the dashboard's "workers alive".
    beating = wait_until(
        lambda: (
            {"worker@host-a", "worker@host-b"}
            <= set(
                Worker.objects.using(ALIAS)
                .filter(seen_at__gte=timezone.now() - timedelta(seconds=3))
                .values_list("name", flat=True)
            )
        ),
        timeout=10,
    )
    assert beating
    FIGURES.append(("release built on host-a (release_create --wait)", f"{built_in:.1f} s"))
    FIGURES.append(("same bytes uploaded and verified from host-b (publish --wait)", f"{published_in:.1f} s"))


def test_a_host_killed_mid_upload_leaves_its_jobs_to_the_other_and_no_file_is_sent_twice(stack: HostsStack) -> None:
    host_a, host_b = stack.host("host-a"), stack.host("host-b")
    target = Target(stack, "killed-pkg")
    target.tag("1.0.0")
    stack.manage("release_create", target.name, "1.0.0", "--ref", "v1.0.0", "--wait")
    release = target.release("1.0.0")

    host_b.worker.stop()  # host-a takes the upload
    try:
        killed_at, on_index_when_killed, upload = kill_host_a_mid_upload(stack, target, release)
        host_b.start_worker()
        deployment = final(stack, release, timeout=90)
        ended_after = time.monotonic() - killed_at
    finally:  # the other tests need both hosts whole
        if not host_b.worker.alive():
            host_b.start_worker()
        host_a.kill(stack.network)
        host_a.beat.start()
        host_a.start_worker()
    upload = Job.objects.using(ALIAS).get(pk=upload.pk)
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    assert upload.attempts == 2
    assert upload.worker == "all@host-b"
    assert [j.pk for j in jobs(release=release) if j.state != Job.State.FINISHED] == []
    assert target.stored_counts() == {a.filename: 1 for a in release.artifacts.using(ALIAS).all()}
    requeued = AuditEvent.objects.using(ALIAS).filter(action="job.queued", object_id=str(upload.pk)).count()
    assert requeued == 1
    FIGURES.append(
        (
            "host-a SIGKILLed mid-upload: deployment finished by host-b after",
            f"{ended_after:.1f} s ({on_index_when_killed} of 2 files already on the index; each stored once)",
        )
    )


def kill_host_a_mid_upload(stack: HostsStack, target: Target, release: Release) -> tuple[float, int, Job]:
    """Publish with host-b's worker stopped, and SIGKILL host-a while its
    upload job runs twine (its start-up alone outlasts the pause)."""
    host_a = stack.host("host-a")
    stack.manage("publish", target.name, "1.0.0", "--to", target.environment)
    uploading = wait_until(
        lambda: next((j for j in jobs(release=release, kind=Job.Kind.UPLOAD, state=Job.State.RUNNING)
                      if j.step.startswith("uploading")), None),
        timeout=60,
        interval=0.01,
    )  # fmt: skip
    assert uploading is not None, f"no upload ran; host-a's worker log:\n{host_a.worker.log_text()[-3000:]}"
    time.sleep(random.Random(17).uniform(0, 0.2))
    killed_at = time.monotonic()
    killed = host_a.kill(stack.network)
    assert len(killed) >= 2, "host-a's worker and beat should both have died"
    upload = Job.objects.using(ALIAS).get(pk=uploading.pk)
    assert upload.state == Job.State.RUNNING, "the upload ended before host-a was killed"
    time.sleep(0.5)
    return killed_at, sum(target.stored_counts().values()), upload


def beat_sends(stack: HostsStack, entry: str = "reap-jobs") -> list[tuple[datetime, str]]:
    """Every send of ``entry`` by either host's beat, in time order, with the host."""
    sends = []
    for host in stack.hosts:
        for line in host.beat.log_text().splitlines():
            match = SEND_LINE.match(line)
            if match and match.group(2) == entry:
                sends.append((datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f"), host.name))
    return sorted(sends)


def test_beat_started_on_both_hosts_sends_each_schedule_once_and_hands_over_when_its_host_dies(
    stack: HostsStack,
) -> None:
    interval = float(PERIODS["REAPER_INTERVAL"])
    window = 8.0
    before = len(beat_sends(stack))
    time.sleep(window)
    sends = beat_sends(stack)[before:]
    senders = {host for _, host in sends}
    assert len(senders) == 1, f"more than one beat sent: {sends}"
    assert window / interval - 2 <= len(sends) <= window / interval + 1
    holder = stack.host(senders.pop())
    standby = next(h for h in stack.hosts if h is not holder)

    # The holder's host dies; the standby takes the lock once it expires.
    holder.beat.process.kill()  # type: ignore[union-attr]
    holder.beat.reap()
    died = time.monotonic()
    took_over = wait_until(lambda: any(h == standby.name for _, h in beat_sends(stack)[before + len(sends) :]), 30)
    handover = time.monotonic() - died
    assert took_over, f"{standby.name}'s beat never sent; its log:\n{standby.beat.log_text()[-2000:]}"
    assert handover <= float(PERIODS["BEAT_LOCK_TIMEOUT"]) + 3
    holder.beat.start()
    time.sleep(3)

    # Over the whole run, across two hand-overs: never two sends of the
    # reaper within less than half its interval, whichever beat sent them.
    every = beat_sends(stack)
    gaps = [(b - a).total_seconds() for (a, _), (b, _) in itertools.pairwise(every)]
    assert min(gaps) >= interval / 2, f"two beats sent at once: {every}"
    FIGURES.append(
        (
            "beat on both hosts",
            f"{len(sends)} reaper sends in {window:.0f} s, all by {holder.name}; {standby.name} took over "
            f"{handover:.1f} s after {holder.name}'s beat died; {len(every)} sends in the run, none doubled "
            f"(smallest gap {min(gaps):.2f} s)",
        )
    )


REAP_AT = """
import json, time
from dataclasses import asdict
from releases.services.reaper import jobs_reap
time.sleep(max(0.0, {at} - time.time()))
print(json.dumps(asdict(jobs_reap())))
"""


def test_reapers_on_both_hosts_at_once_requeue_and_resend_each_job_once(stack: HostsStack) -> None:
    for host in stack.hosts:
        host.beat.stop()
        host.worker.stop()
    targets = [Target(stack, f"reaped-{n}-pkg") for n in range(2)]
    for target in targets:
        target.tag("1.0.0")
        target.tag("1.0.1")
    stack.shell(
        "from releases.models import Project\n"
        "from releases.services.releases import release_create\n"
        + "".join(
            f"release_create(project=Project.objects.get(name={t.name!r}), version={v!r}, ref='v{v}', actor=None)\n"
            for t in targets
            for v in ("1.0.0", "1.0.1")
        )
    )
    broker = redis.Redis.from_url(stack.redis.url(0))
    queues = ("console-hosts", "console-hosts.builder")  # the publishers' queue and the builders'
    broker.delete(*queues)  # every message lost
    stale = [t.release("1.0.0").jobs.using(ALIAS).get().pk for t in targets]
    lost = [t.release("1.0.1").jobs.using(ALIAS).get().pk for t in targets]
    # What a dead worker leaves: jobs running, their heartbeats old.
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(
            "UPDATE releases_job SET state = 'running', attempts = 1, worker = 'host-gone', "
            "started_at = now() - interval '10 minutes', heartbeat_at = now() - interval '10 minutes' "
            "WHERE id = ANY(%s)",
            [stale],
        )
        cursor.execute("UPDATE releases_job SET sent_at = now() - interval '10 minutes' WHERE id = ANY(%s)", [lost])

    at = time.time() + 3
    code = REAP_AT.format(at=at)
    reapers = [
        subprocess.Popen(
            host.command([sys.executable, "manage.py", "shell", "--no-imports", "-c", code]),
            env=host.env, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for host in stack.hosts
        for _ in range(2)
    ]  # fmt: skip
    reports = []
    for reaper in reapers:
        out, err = reaper.communicate(timeout=120)
        assert reaper.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    requeued = [pk for r in reports for pk in r["requeued"]]
    resent = [pk for r in reports for pk in r["resent"]]
    assert sorted(requeued) == sorted(stale), reports
    assert sorted(resent) == sorted(lost), reports
    assert [r["failed"] for r in reports] == [[]] * len(reports)
    messages = sum(broker.llen(queue) for queue in queues)
    assert messages == len(stale) + len(lost), "a job was sent more than once"
    for pk in stale:
        assert AuditEvent.objects.using(ALIAS).filter(action="job.queued", object_id=str(pk)).count() == 1

    started = time.monotonic()
    for host in stack.hosts:
        host.start_worker()
        host.beat.start()
    built = wait_until(
        lambda: all(t.release(v).outcome == Release.Outcome.BUILT for t in targets for v in ("1.0.0", "1.0.1")),
        timeout=180,
        interval=0.5,
    )
    assert built, [(j.pk, j.state, j.outcome, j.reason) for j in jobs(kind=Job.Kind.BUILD)]
    FIGURES.append(
        (
            "4 reapers at once (2 per host)",
            f"{len(stale)} stale jobs requeued once each, {len(lost)} lost jobs resent once each, "
            f"{messages} messages for {len(stale) + len(lost)} jobs; the {2 * len(targets)} builds then ended in "
            f"{time.monotonic() - started:.1f} s",
        )
    )


def test_one_project_queueing_ten_releases_does_not_starve_another(stack: HostsStack) -> None:
    busy, quiet = Target(stack, "busy-pkg"), Target(stack, "quiet-pkg")
    versions = [f"1.0.{n}" for n in range(1, 7)]
    for version in versions:
        busy.tag(version)
    quiet.tag("2.0.0")
    for host in stack.hosts:
        host.worker.stop()
    stack.shell(
        "from releases.models import Project\n"
        "from releases.services.releases import release_create\n"
        + "".join(
            f"release_create(project=Project.objects.get(name={busy.name!r}), version={v!r}, ref='v{v}', actor=None)\n"
            for v in versions
        )
        + f"release_create(project=Project.objects.get(name={quiet.name!r}), version='2.0.0', ref='v2.0.0', actor=None)\n"
    )
    started = time.monotonic()
    for host in stack.hosts:
        host.start_worker()
    done = wait_until(
        lambda: (
            Release.objects.using(ALIAS)
            .filter(project__name__in=[busy.name, quiet.name], state=Release.State.FINISHED)
            .count()
            == len(versions) + 1
        ),
        timeout=300,
        interval=0.5,
    )
    took = time.monotonic() - started
    assert done, [(j.pk, j.state, j.step) for j in jobs(kind=Job.Kind.BUILD, state__in=["queued", "running"])]

    busy_jobs = jobs(release__project__name=busy.name)
    quiet_build = jobs(release__project__name=quiet.name, kind=Job.Kind.BUILD)[0]
    assert all(j.outcome == Job.Outcome.SUCCEEDED for j in [*busy_jobs, quiet_build])
    finished_before_quiet = sorted(j.finished_at for j in busy_jobs if j.finished_at < quiet_build.started_at)
    assert len(finished_before_quiet) < len(versions)
    assert quiet_build.started_at < sorted(j.finished_at for j in busy_jobs)[1], "quiet-pkg waited behind busy-pkg"
    # busy-pkg never ran two jobs at once (its limit is one).
    spans = sorted((j.started_at, j.finished_at) for j in busy_jobs)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    last_busy = max(j.finished_at for j in busy_jobs)
    FIGURES.append(
        (
            f"fairness: busy-pkg queued {len(versions)} releases, then quiet-pkg 1",
            f"quiet-pkg's build started after {len(finished_before_quiet)} of busy-pkg's builds and ended "
            f"{(last_busy - quiet_build.finished_at).total_seconds():.1f} s before busy-pkg's last; all {len(versions) + 1} in {took:.1f} s",
        )
    )


def test_a_tampered_object_in_the_store_is_refused_before_anything_is_sent(stack: HostsStack) -> None:
    target = Target(stack, "tampered-pkg")
    target.tag("1.0.0")
    stack.manage("release_create", target.name, "1.0.0", "--ref", "v1.0.0", "--wait")
    release = target.release("1.0.0")
    wheel = release.artifacts.using(ALIAS).get(kind=Artifact.Kind.WHEEL)
    # Someone with the bucket's credentials replaces the wheel behind the console's back.
    stack.s3.client().put_object(Bucket=stack.bucket, Key=wheel.path, Body=b"not the wheel that was built")

    result = subprocess.run(
        [sys.executable, "manage.py", "publish", target.name, "1.0.0", "--to", target.environment, "--wait"],
        env=stack.web_env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, check=False,
    )  # fmt: skip

    deployment = deployment_of(release)
    assert result.returncode != 0
    assert deployment.outcome == Deployment.Outcome.FAILED
    assert f"The stored {wheel.filename} is not the file that was built" in deployment.reason
    assert f"recorded sha256 {wheel.sha256}" in deployment.reason
    assert stack.devpi.upload_requests(target.account) == 0


def test_no_job_is_left_queued_or_running_and_each_host_ran_its_share(stack: HostsStack) -> None:
    every = jobs()
    stuck = [(j.pk, j.kind, j.state) for j in every if j.state != Job.State.FINISHED]
    assert stuck == []
    per_host: dict[str, int] = {}
    for job in every:
        per_host[job.worker or "never claimed"] = per_host.get(job.worker or "never claimed", 0) + 1
    assert per_host.get("all@host-a", 0) > 0
    assert per_host.get("all@host-b", 0) > 0
    FIGURES.append(
        ("jobs run, by the host that ran them last", ", ".join(f"{h} {n}" for h, n in sorted(per_host.items())))
    )
    FIGURES.append(("jobs left queued or running", str(len(stuck))))


def print_summary(write: Callable[[str], object]) -> None:
    """The run's figures (called at the end of the session)."""
    if not FIGURES:
        return
    write("")
    write("two hosts: figures")
    width = max(len(part) for part, _ in FIGURES)
    for part, figure in FIGURES:
        write(f"{part:<{width}}  {figure}")
