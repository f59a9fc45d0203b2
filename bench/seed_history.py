"""Years of made-up history, fast: for measuring pages against a big database.

``python -m bench.seed_history [--releases N] [--jobs N] [--log-lines N]``
(the benchmark's environment, bench/common.py, decides the database).

The projects, environments and the person come from the services, as any
others would. The history itself (releases, files, deployments, jobs, log
lines) goes in with ``bulk_create`` in batches (the log lines with COPY on
PostgreSQL), dated over the last three years: a hundred thousand jobs run
one by one would take hours. Its audit events are appended to the real
chain by ``audit_append``, so ``audit_verify_chain`` still holds afterwards.
It refuses to run in production mode: it writes thousands of releases that
never happened.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup()

from django.conf import settings  # noqa: E402  (after django.setup())
from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, models  # noqa: E402
from django.utils import timezone  # noqa: E402

from releases.models import (  # noqa: E402
    Artifact,
    AuditAction,
    AuditEvent,
    Deployment,
    DeploymentFile,
    Environment,
    Job,
    JobLogLine,
    Project,
    Release,
)
from releases.services.audit import audit_append  # noqa: E402
from releases.services.projects import environment_create, project_create  # noqa: E402
from releases.services.roles import role_assign  # noqa: E402

BATCH = 5000
YEARS = 3
State = Deployment.State
Outcome = Deployment.Outcome


class SeedError(Exception):
    """The seed cannot run as asked."""


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


class Seeder:
    def __init__(self) -> None:
        self.out = print

    def handle(self, options: dict[str, Any]) -> None:
        if settings.PRODUCTION:
            raise SeedError("seed_history writes made-up history; it refuses to run with CONSOLE_MODE=production.")
        if options["releases"] < 1 or options["jobs"] < options["releases"] or options["log_lines"] < 0:
            raise SeedError("Give at least one release, at least as many jobs as releases, and some log lines.")
        prefix = options["prefix"]
        if Project.objects.filter(name__startswith=f"{prefix}-").exists():
            raise SeedError(f"Projects named {prefix}-* exist already; pick another --prefix.")
        rng = random.Random(options["seed"])
        started = time.monotonic()
        projects, environments, user = self._projects(prefix, options["projects"])
        with explicit_dates(Release, Artifact, Deployment, Job):
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
        self.out(f"seeded in {time.monotonic() - started:.1f} s")

    def _say(self, what: str, started: float) -> None:
        self.out(f"{time.monotonic() - started:7.1f} s  {what}")

    def _projects(self, prefix: str, count: int) -> tuple[list[Project], list[Environment], User]:
        user = User.objects.create_user(f"{prefix}-releaser")
        role_assign(user, "releaser", actor=None)
        projects = [
            project_create(
                name=f"{prefix}-pkg-{n:03d}", source=f"https://git.example.org/{prefix}/pkg-{n:03d}.git", actor=None
            )
            for n in range(count)
        ]
        test = environment_create(
            name=f"{prefix}-test-pypi",
            title="Test PyPI",
            upload_url="https://test.pypi.org/legacy/",
            index_url="https://test.pypi.org/simple/",
            actor=None,
        )
        production = environment_create(
            name=f"{prefix}-pypi",
            title="PyPI",
            upload_url="https://upload.pypi.org/legacy/",
            index_url="https://pypi.org/simple/",
            required_approvals=1,
            after=test.name,
            actor=None,
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
                    state=Release.State.FINISHED,
                    outcome=Release.Outcome.FAILED if failed else Release.Outcome.BUILT,
                    reason="setuptools failed: see the log" if failed else "",
                    created_by=user,
                    created_at=created,
                    built_at=created + timedelta(seconds=4),
                )
            )
        releases = Release.objects.bulk_create(rows, batch_size=BATCH)
        artifacts = []
        for release in releases:
            if not release.is_built:
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
            if not release.is_built:
                continue
            at = release.created_at + timedelta(seconds=10)
            ok = rng.random() < 0.95
            rows.append(self._deployment(release, test, Outcome.SUCCEEDED if ok else Outcome.FAILED, at, user))
            if ok and rng.random() < 0.6:
                outcome = rng.choice([Outcome.SUCCEEDED] * 8 + [Outcome.REJECTED, Outcome.EXPIRED])
                rows.append(self._deployment(release, production, outcome, at + timedelta(hours=2), user))
        deployments = Deployment.objects.bulk_create(rows, batch_size=BATCH)
        artifacts: dict[int, list[int]] = {}
        for release_id, artifact_id in Artifact.objects.values_list("release_id", "id"):
            artifacts.setdefault(release_id, []).append(artifact_id)
        files = [
            DeploymentFile(
                deployment=d,
                artifact_id=a,
                state=DeploymentFile.State.VERIFIED if d.succeeded else DeploymentFile.State.PENDING,
                outcome=DeploymentFile.Outcome.UPLOADED if d.succeeded else DeploymentFile.Outcome.NONE,
            )
            for d in deployments
            for a in artifacts.get(d.release_id, [])
        ]
        DeploymentFile.objects.bulk_create(files, batch_size=BATCH)
        return deployments

    def _deployment(self, release: Release, environment: Environment, outcome: str, at: Any, user: Any) -> Deployment:
        return Deployment(
            release=release,
            project_id=release.project_id,
            environment=environment,
            state=State.FINISHED,
            outcome=outcome,
            reason="" if outcome == Outcome.SUCCEEDED else f"{outcome} (seeded)",
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
                reason="seeded failure" if failed else "",
                attempts=1,
                created_at=at,
                queued_at=at,
                started_at=at,
                heartbeat_at=at + timedelta(seconds=3),
                finished_at=at + timedelta(seconds=3),
            )

        for release in releases:
            failed = release.build_failed
            rows.append(job(Job.Kind.BUILD, release, None, release.created_at, failed))
            for deployment in by_release.get(release.pk, []):
                bad = deployment.outcome == Outcome.FAILED
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
        planned = [
            AuditEvent(
                actor_name="seed",
                action=AuditAction.RELEASE_CREATED,
                object_type="release",
                object_id=str(r.pk),
                release_id=r.pk,
                created_at=r.created_at,
                data={"project": r.project.name, "version": r.version, "seeded": True},
            )
            for r in releases
        ] + [
            AuditEvent(
                actor_name="seed",
                action=AuditAction(f"deployment.{d.outcome}"),
                object_type="deployment",
                object_id=str(d.pk),
                release_id=d.release_id,
                created_at=d.finished_at or d.created_at,
                data={"environment": d.environment.name, "version": d.release.version, "seeded": True},
            )
            for d in deployments
        ]
        planned.sort(key=lambda event: event.created_at)
        return len(audit_append(planned))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--log-lines", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=40)
    parser.add_argument("--prefix", default="seed", help="Names of the seeded projects and environments.")
    parser.add_argument("--seed", type=int, default=1)
    try:
        Seeder().handle(vars(parser.parse_args()))
    except SeedError as exc:
        raise SystemExit(f"seed_history: {exc}") from None


if __name__ == "__main__":
    main()
