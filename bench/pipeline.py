"""The console against the manual release steps, on one sample package and
one local index (devpi-server), in alternating rounds, each a new version:

(a) by hand, as the release guide says: ``python -m build``, ``twine
    upload``, then ``python -m venv`` + ``pip install --isolated
    --index-url ...`` + an import;
(b) the console: ``manage.py release_create P V --ref R --wait`` then
    ``manage.py publish P V --to ENV --wait``, from request to verified,
    with a Celery worker of its own.

Prints the median time of each step and, last, the ratio b/a.

    python -m bench.pipeline [--rounds N] [--pool solo|prefork]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

from bench.common import (
    ROOT,
    Stopwatch,
    bench_environment,
    ensure_database,
    median,
    scratch,
    setup_django,
    table,
)


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def manual_round(repo, account, version: str, workdir: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The release guide's steps, each timed."""
    repo.commit_version(version, tag=f"v{version}")
    person = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "CELERY_", "DJANGO_"))}
    dist = workdir / "dist"
    times: dict[str, float] = {}
    clock = Stopwatch()
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(repo.path)], env=person)
    times["python -m build"] = clock.seconds()
    clock = Stopwatch()
    run(
        [
            sys.executable,
            "-m",
            "twine",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            account.upload_url,
            *[str(p) for p in sorted(dist.iterdir())],
        ],
        env={
            **person,
            "TWINE_USERNAME": account.user,
            "TWINE_PASSWORD": account.password,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        },
    )
    times["twine upload"] = clock.seconds()
    venv = workdir / "venv"
    clock = Stopwatch()
    run([sys.executable, "-m", "venv", str(venv)], env=person)
    times["python -m venv"] = clock.seconds()
    clock = Stopwatch()
    run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--isolated",
            "--index-url",
            account.simple_url,
            f"{repo.name}=={version}",
        ],
        env=person,
    )
    times["pip install --isolated"] = clock.seconds()
    clock = Stopwatch()
    run([str(venv / "bin" / "python"), "-c", f"import {repo.module}"], env=person)
    times["import"] = clock.seconds()
    times["total"] = sum(times.values())
    return times


def console_round(repo, environment: str, version: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The two headless commands, timed, and what the jobs' rows say of the time between."""
    from releases.models import Job, Release

    repo.commit_version(version, tag=f"v{version}")
    times: dict[str, float] = {}
    clock = Stopwatch()
    run([sys.executable, "manage.py", "release_create", repo.name, version, "--ref", f"v{version}", "--wait"], cwd=ROOT)
    times["release_create --wait"] = clock.seconds()
    clock = Stopwatch()
    run([sys.executable, "manage.py", "publish", repo.name, version, "--to", environment, "--wait"], cwd=ROOT)
    times["publish --wait"] = clock.seconds()
    times["total"] = times["release_create --wait"] + times["publish --wait"]
    release = Release.objects.get(project__name=repo.name, version=version)
    jobs = {job.kind: job for job in Job.objects.filter(release=release)}
    previous_end = None
    for kind in (Job.Kind.BUILD, Job.Kind.UPLOAD, Job.Kind.VERIFY):
        job = jobs[kind]
        assert job.started_at and job.finished_at
        times[f"  {kind}: queued → claimed"] = (job.started_at - job.queued_at).total_seconds()
        times[f"  {kind}: running"] = (job.finished_at - job.started_at).total_seconds()
        if previous_end is not None:
            times[f"  {kind}: previous job end → claimed"] = (job.started_at - previous_end).total_seconds()
        previous_end = job.finished_at
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="Measured rounds of each (after one warm-up round).")
    parser.add_argument("--pool", choices=["solo", "prefork"], default="prefork", help="The worker's pool.")
    args = parser.parse_args(argv)

    with scratch("bench-pipeline-") as tmp:
        bench_environment(tmp / "var")
        ensure_database(os.environ["DATABASE_URL"])
        setup_django()
        from releases.services.projects import environment_create, project_create
        from tests.support.devpi import DevpiServer
        from tests.support.sample import SampleRepo
        from tests.support.worker import WorkerProcess

        devpi = DevpiServer(tmp / "devpi")
        devpi.start()
        (tmp / "logs").mkdir()
        worker = WorkerProcess(tmp / "logs", "bench-worker", env=dict(os.environ), pool=args.pool)
        try:
            worker.start()
            account = devpi.new_index()
            suffix = uuid.uuid4().hex[:8]
            repo = SampleRepo(tmp / "repo", name=f"bench-pkg-{suffix}")
            repo.commit_version("0.0.0")
            project_create(name=repo.name, source=str(repo.path), actor=None)
            environment = f"bench-{suffix}"
            environment_create(
                name=environment,
                upload_url=account.upload_url,
                index_url=account.simple_url,
                username=account.user,
                token=account.password,
                actor=None,
            )
            manual: dict[str, list[float]] = defaultdict(list)
            console: dict[str, list[float]] = defaultdict(list)
            for n in range(args.rounds + 1):
                a = manual_round(repo, account, f"1.{n}.0", tmp / f"manual-{n}")
                b = console_round(repo, environment, f"1.{n}.1")
                if n == 0:
                    continue  # warm-up: caches filled for both alike
                for key, value in a.items():
                    manual[key].append(value)
                for key, value in b.items():
                    console[key].append(value)
                print(f"round {n}: manual {a['total']:.2f} s, console {b['total']:.2f} s", flush=True)
        finally:
            worker.stop()
            devpi.stop()

    print()
    print(f"(a) manual steps, median of {args.rounds} rounds (seconds)")
    print(table(["step", "median", "min", "max"], [[k, median(v), min(v), max(v)] for k, v in manual.items()]))
    print()
    print(f"(b) the console, {args.pool} worker, median of {args.rounds} rounds (seconds)")
    print(table(["step", "median", "min", "max"], [[k, median(v), min(v), max(v)] for k, v in console.items()]))
    a_total, b_total = median(manual["total"]), median(console["total"])
    print()
    print(
        f"b/a = {b_total / a_total:.2f} (console {b_total:.2f} s, manual {a_total:.2f} s, median of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
