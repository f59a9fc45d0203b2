"""Years of made-up history, fast: for measuring pages against a big database.

Rows go in with ``bulk_create`` in batches (the log lines with COPY on
PostgreSQL), dated over the last three years. Audit events are appended
to the real chain (its head locked, each event hashed and sealed as
``audit_record`` does), so ``audit_verify_chain`` still holds afterwards.
Never run it against a production database: it writes thousands of
releases that never happened.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, models, transaction
from django.utils import timezone

from releases.models import (
    Artifact,
    AuditChainHead,
    AuditEvent,
    Deployment,
    DeploymentFile,
    Environment,
    Job,
    JobLogLine,
    Project,
    Release,
)
from releases.services.audit import canonical_json, chain_keys, seal_event

BATCH = 5000
YEARS = 3
Status = Deployment.Status


@contextmanager
def explicit_dates(*models_: type[models.Model]) -> Iterator[None]:
    """Let the rows keep the dates we give them instead of "now"."""
    fields = [f for m in models_ for f in m._meta.concrete_fields if getattr(f, "auto_now_add", False)]
    for field in fields:
        field.auto_now_add = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for field in fields:
            field.auto_now_add = True  # type: ignore[attr-defined]


class Command(BaseCommand):
    help = "Seed years of release history (releases, deployments, jobs, log lines, audit events) for benchmarks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--releases", type=int, default=10_000)
        parser.add_argument("--jobs", type=int, default=100_000)
        parser.add_argument("--log-lines", type=int, default=1_000_000)
        parser.add_argument("--projects", type=int, default=40)
        parser.add_argument("--prefix", default="seed", help="Names of the seeded projects and environments.")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_history writes made-up history; it refuses to run with CONSOLE_MODE=production.")
        if options["releases"] < 1 or options["jobs"] < options["releases"] or options["log_lines"] < 0:
            raise CommandError("Give at least one release, at least as many jobs as releases, and some log lines.")
        prefix = options["prefix"]
        if Project.objects.filter(name__startswith=f"{prefix}-").exists():
            raise CommandError(f"Projects named {prefix}-* exist already; pick another --prefix.")
        rng = random.Random(options["seed"])
        started = time.monotonic()
        with explicit_dates(Project, Environment, Release, Artifact, Deployment, Job):
            projects, environments, user = self._projects(prefix, options["projects"])
            releases = self._releases(rng, projects, options["releases"], user)
            self._say(f"{len(releases)} releases", started)
            deployments = self._deployments(rng, releases, environments, user)
            self._say(f"{len(deployments)} deployments", started)
            jobs = self._jobs(releases, deployments, options["jobs"])
            self._say(f"{len(jobs)} jobs", started)
        lines = self._log_lines(jobs, options["log_lines"], f"{prefix}-")
        self._say(f"{lines} log lines", started)
        events = self._audit(releases, deployments)
        self._say(f"{events} audit events", started)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.stdout.write(f"seeded in {time.monotonic() - started:.1f} s")

    def _say(self, what: str, started: float) -> None:
        self.stdout.write(f"{time.monotonic() - started:7.1f} s  {what}")

    def _projects(self, prefix: str, count: int) -> tuple[list[Project], list[Environment], Any]:
        user, _ = get_user_model().objects.get_or_create(username=f"{prefix}-releaser")
        now = timezone.now()
        start = now - timedelta(days=365 * YEARS)
        projects = Project.objects.bulk_create(
            Project(
                name=f"{prefix}-pkg-{n:03d}",
                source=f"https://git.example.org/{prefix}/pkg-{n:03d}.git",
                created_at=start,
            )
            for n in range(count)
        )
        test = Environment.objects.create(
            name=f"{prefix}-test-pypi",
            title="Test PyPI",
            upload_url="https://test.pypi.org/legacy/",
            index_url="https://test.pypi.org/simple/",
            created_at=start,
        )
        production = Environment.objects.create(
            name=f"{prefix}-pypi",
            title="PyPI",
            upload_url="https://upload.pypi.org/legacy/",
            index_url="https://pypi.org/simple/",
            required_approvals=1,
            requires_success_in=test,
            created_at=start,
        )
        return projects, [test, production], user

    def _releases(self, rng: random.Random, projects: list[Project], count: int, user: Any) -> list[Release]:
        now = timezone.now()
        span = timedelta(days=365 * YEARS).total_seconds()
        versions: dict[int, int] = {}
        rows = []
        for n in range(count):
            project = projects[n % len(projects)]
            serial = versions[project.pk] = versions.get(project.pk, 0) + 1
            created = now - timedelta(seconds=span * (count - n) / count)
            failed = rng.random() < 0.03
            rows.append(
                Release(
                    project=project,
                    version=f"{serial // 100}.{serial // 10 % 10}.{serial % 10}",
                    ref=f"v{serial // 100}.{serial // 10 % 10}.{serial % 10}",
                    commit=f"{rng.getrandbits(160):040x}",
                    build_state=Release.BuildState.FAILED if failed else Release.BuildState.BUILT,
                    build_error="setuptools failed: see the log" if failed else "",
                    created_by=user,
                    created_at=created,
                    built_at=created + timedelta(seconds=4),
                )
            )
        releases = Release.objects.bulk_create(rows, batch_size=BATCH)
        artifacts = []
        for release in releases:
            if release.build_state != Release.BuildState.BUILT:
                continue
            stem = f"{release.project.name.replace('-', '_')}-{release.version}"
            for kind, filename in (("sdist", f"{stem}.tar.gz"), ("wheel", f"{stem}-py3-none-any.whl")):
                artifacts.append(
                    Artifact(
                        release=release,
                        filename=filename,
                        kind=kind,
                        size=rng.randint(2_000, 200_000),
                        sha256=f"{rng.getrandbits(256):064x}",
                        path=f"{release.project.name}/{release.version}/{filename}",
                        created_at=release.created_at,
                    )
                )
        Artifact.objects.bulk_create(artifacts, batch_size=BATCH)
        return releases

    def _deployments(
        self, rng: random.Random, releases: list[Release], environments: list[Environment], user: Any
    ) -> list[Deployment]:
        test, production = environments
        rows = []
        for release in releases:
            if release.build_state != Release.BuildState.BUILT:
                continue
            at = release.created_at + timedelta(seconds=10)
            ok = rng.random() < 0.95
            rows.append(self._deployment(release, test, Status.SUCCEEDED if ok else Status.FAILED, at, user))
            if ok and rng.random() < 0.6:
                status = rng.choice([Status.SUCCEEDED] * 8 + [Status.REJECTED, Status.EXPIRED])
                rows.append(self._deployment(release, production, status, at + timedelta(hours=2), user))
        deployments = Deployment.objects.bulk_create(rows, batch_size=BATCH)
        artifacts: dict[int, list[int]] = {}
        for release_id, artifact_id in Artifact.objects.values_list("release_id", "id"):
            artifacts.setdefault(release_id, []).append(artifact_id)
        files = [
            DeploymentFile(
                deployment=d,
                artifact_id=a,
                state=DeploymentFile.State.VERIFIED if d.status == Status.SUCCEEDED else DeploymentFile.State.PENDING,
            )
            for d in deployments
            for a in artifacts.get(d.release_id, [])
        ]
        DeploymentFile.objects.bulk_create(files, batch_size=BATCH)
        return deployments

    def _deployment(self, release: Release, environment: Environment, status: str, at: Any, user: Any) -> Deployment:
        return Deployment(
            release=release,
            project_id=release.project_id,
            environment=environment,
            status=status,
            reason="" if status == Status.SUCCEEDED else f"{status} (seeded)",
            requested_by=user,
            required_approvals=environment.required_approvals,
            summary={"version": release.version, "environment": environment.name},
            created_at=at,
            started_at=at + timedelta(seconds=1),
            finished_at=at + timedelta(seconds=6),
        )

    def _jobs(self, releases: list[Release], deployments: list[Deployment], count: int) -> list[Job]:
        """A build per release, an upload and a verify per deployment, then scans until ``count``."""
        by_release: dict[int, list[Deployment]] = {}
        for deployment in deployments:
            by_release.setdefault(deployment.release_id, []).append(deployment)
        rows: list[Job] = []

        def job(kind: str, release: Release, deployment: Deployment | None, at: Any, failed: bool = False) -> Job:
            return Job(
                kind=kind,
                release=release,
                deployment=deployment,
                state=Job.State.FINISHED,
                outcome=Job.Outcome.FAILED if failed else Job.Outcome.SUCCEEDED,
                error="seeded failure" if failed else "",
                attempts=1,
                created_at=at,
                queued_at=at,
                started_at=at,
                heartbeat_at=at + timedelta(seconds=3),
                finished_at=at + timedelta(seconds=3),
            )

        for release in releases:
            failed = release.build_state == Release.BuildState.FAILED
            rows.append(job(Job.Kind.BUILD, release, None, release.created_at, failed))
            for deployment in by_release.get(release.pk, []):
                bad = deployment.status == Status.FAILED
                rows.append(job(Job.Kind.UPLOAD, release, deployment, deployment.created_at))
                rows.append(job(Job.Kind.VERIFY, release, deployment, deployment.created_at, bad))
        n = 0
        while len(rows) < count:
            release = releases[n % len(releases)]
            rows.append(
                job(Job.Kind.SCAN, release, None, release.created_at + timedelta(minutes=1 + n // len(releases)))
            )
            n += 1
        return Job.objects.bulk_create(rows[:count], batch_size=BATCH)

    def _log_lines(self, jobs: list[Job], count: int, prefix: str) -> int:
        """Lines spread over the jobs, a tenth of them in the newest build's log (a long one)."""
        if not count:
            return 0
        big = count // 10
        rest = count - big
        per_job, extra = divmod(rest, len(jobs))
        table = JobLogLine._meta.db_table
        newest_build = max((j for j in jobs if j.kind == Job.Kind.BUILD), key=lambda j: j.pk)
        words = ["copying", "compiling", "writing", "adding", "running", "checking", "uploading", "installing"]
        written = 0
        with connection.cursor() as cursor:
            # Reference: https://www.psycopg.org/psycopg3/docs/basic/copy.html
            copy_sql = f"COPY {table} (job_id, number, created_at, text) FROM STDIN"
            buffer: list[str] = []

            def flush() -> None:
                if not buffer:
                    return
                if connection.vendor == "postgresql":
                    with cursor.cursor.copy(copy_sql) as copy:
                        copy.write("".join(buffer))
                else:
                    JobLogLine.objects.bulk_create(
                        JobLogLine(job_id=int(a), number=int(b), created_at=c, text=d.rstrip("\n"))
                        for a, b, c, d in (line.split("\t", 3) for line in buffer)
                    )
                buffer.clear()

            for index, job in enumerate(jobs):
                lines = per_job + (1 if index < extra else 0) + (big if job.pk == newest_build.pk else 0)
                stamp = job.started_at.isoformat() if job.started_at else timezone.now().isoformat()
                for number in range(1, lines + 1):
                    word = words[(job.pk + number) % len(words)]
                    buffer.append(f"{job.pk}\t{number}\t{stamp}\t{word} build/lib/module_{number}.py\n")
                written += lines
                if len(buffer) >= 50 * BATCH:
                    flush()
            flush()
        seeded = Job.objects.filter(pk__gte=jobs[0].pk, pk__lte=jobs[-1].pk, release__project__name__startswith=prefix)
        seeded.update(log_lines=per_job)
        Job.objects.filter(pk=newest_build.pk).update(log_lines=per_job + big)
        return written

    def _audit(self, releases: list[Release], deployments: list[Deployment]) -> int:
        """release.created and each deployment's end, appended to the real chain."""
        planned: list[tuple[str, str, int, int, datetime, dict[str, str]]] = [
            ("release.created", "release", r.pk, r.pk, r.created_at, {"project": r.project.name, "version": r.version})
            for r in releases
        ] + [
            (
                f"deployment.{d.status}",
                "deployment",
                d.pk,
                d.release_id,
                d.finished_at or d.created_at,
                {"environment": d.environment.name, "version": d.release.version},
            )
            for d in deployments
        ]
        planned.sort(key=lambda p: p[4])
        with transaction.atomic():
            head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
            previous = head.last_hash
            key = chain_keys()[0]
            events = []
            for offset, (action, object_type, object_id, release_id, at, data) in enumerate(planned, start=1):
                event = AuditEvent(
                    id=head.last_event_id + offset,
                    actor_name="seed",
                    action=action,
                    object_type=object_type,
                    object_id=str(object_id),
                    release_id=release_id,
                    data={**canonical_data(data), "seeded": True},
                    created_at=at,
                )
                seal_event(event, previous, key)
                previous = event.hash
                events.append(event)
            AuditEvent.objects.bulk_create(events, batch_size=BATCH)
            if events:
                head.last_event_id = events[-1].pk
                head.last_hash = previous
                head.save(update_fields=["last_event_id", "last_hash"])
        return len(events)


def canonical_data(data: dict[str, Any]) -> dict[str, Any]:
    import json

    return dict(json.loads(canonical_json(data)))
