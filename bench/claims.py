"""The embedded default's queue: how long a queued job waits for a worker,
and what an idle worker costs.

On its own var folder, with no ``DATABASE_URL`` or ``REDIS_URL`` (SQLite and
the embedded broker, as ``make run`` has them), one worker started exactly as
``make run`` starts it:

1. ``--jobs`` build jobs, one after another, each queued a random moment
   after the last one ended (so that no poll phase is favoured); each one's
   wait is its row's ``started_at - queued_at``. The project's source does not
   exist, so each build fails at once: the claim is what is measured.
2. The worker's CPU time (its process and its pool's, from /proc) over
   ``--idle`` seconds with nothing queued.

    python -m bench.claims [--jobs 20] [--idle 60]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, median, scratch, setup_django, table
from tests.support.processes import tree_cpu_seconds


def embedded_environment(var_dir: Path) -> dict[str, str]:
    """This process's environment for the embedded default, before Django loads."""
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_QUEUE", "SECRET_KEY", "CONSOLE_TOKEN_KEYS"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "CONSOLE_MODE": "embedded",
            "CONSOLE_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "console.settings",
        }
    )
    return dict(os.environ)


def start_worker(logdir: Path) -> subprocess.Popen[bytes]:
    """The worker as ``make run`` starts it, once it is ready."""
    from releases.management.commands.run_embedded import worker_command

    log_path = logdir / "worker.log"
    process = subprocess.Popen(
        worker_command(), stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while b" ready." not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the worker did not start; see {log_path}:\n{log_path.read_text()}")
        time.sleep(0.1)
    return process


def claim_wait(project: object, version: str) -> float:
    """Queue one build and return how long it waited to be claimed."""
    from releases.models import Job
    from releases.services.releases import release_create

    release = release_create(project=project, version=version, ref="main", actor=None)  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while True:
        job = Job.objects.get(release=release)
        if job.state == Job.State.FINISHED and job.started_at is not None:
            return (job.started_at - job.queued_at).total_seconds()
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job.pk} was not done within 60 s ({job.state})")
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=20, help="Measured jobs (after one warm-up job).")
    parser.add_argument("--idle", type=float, default=60.0, help="Seconds of idle worker to measure.")
    args = parser.parse_args(argv)

    with scratch("bench-claims-") as tmp:
        embedded_environment(tmp / "var")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True, capture_output=True)
        setup_django()
        from django.conf import settings

        from releases.services.projects import project_create

        print(f"broker {settings.CELERY_BROKER_URL}  options {settings.CELERY_BROKER_TRANSPORT_OPTIONS}", flush=True)
        worker = start_worker(tmp)
        try:
            project = project_create(name="bench-claims", source=str(tmp / "no-such-source"), actor=None)
            claim_wait(project, "0.0.0")  # warm-up: the pool's first task imports the pipeline
            waits = []
            for n in range(args.jobs):
                time.sleep(random.uniform(0, 1))
                waits.append(claim_wait(project, f"1.{n}.0"))
            time.sleep(5)  # let the last job's follow-ups settle
            before = tree_cpu_seconds(worker.pid)
            time.sleep(args.idle)
            idle_cpu = tree_cpu_seconds(worker.pid) - before
        finally:
            worker.terminate()
            worker.wait(30)

    waits_ms = sorted(w * 1000 for w in waits)
    print()
    print(
        table(
            ["figure", "value"],
            [
                [f"queued → claimed, median of {len(waits_ms)} (ms)", median(waits_ms)],
                ["queued → claimed, min (ms)", waits_ms[0]],
                ["queued → claimed, max (ms)", waits_ms[-1]],
                [f"idle worker CPU over {args.idle:.0f} s (s)", idle_cpu],
                ["idle worker CPU (% of one core)", 100 * idle_cpu / args.idle],
            ],
        )
    )
    print()
    print(f"claim median {median(waits_ms):.1f} ms; idle worker {100 * idle_cpu / args.idle:.2f} % of one core")


if __name__ == "__main__":
    main()
