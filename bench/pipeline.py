"""The console against two ways of releasing by hand, on one sample package
and one local index (devpi-server), in alternating rounds, each a new
version:

(a) the release guide: ``python -m build``, ``twine upload``, then
    ``python -m venv`` + ``pip install --isolated --index-url ...`` + an
    import;
(c) the fastest by hand: ``uv build``, ``uv publish`` (the token in the
    environment), then ``uv venv`` + ``uv pip install --index-url ...`` + an
    import, all ignoring user configuration (``UV_NO_CONFIG``);
(b) the console: ``manage.py publish P V --ref R --to ENV --wait``, from the
    ref to verified in one command, with a Celery worker of its own, on
    PostgreSQL + Redis or (``--embedded``) on SQLite + the embedded broker in
    a var folder of its own, as ``make run`` has it. Its vulnerability scan
    asks a loopback OSV stand-in (tests/support/osv_standin.py).

Prints the median time of each step and, last, the ratios console/guide
(b/a) and console/uv (b/c).

With ``--before CHECKOUT`` (another checkout of the console, such as the
commit before a change: ``git archive COMMIT | tar -x -C DIR``), each round
also runs that checkout's console, with its own worker, queue and tool
cache and this environment's packages, on a project of its own: the same
rounds, the same machine and the same index, before and after, taking turns
to go first.

    python -m bench.pipeline [--rounds N] [--pool solo|prefork] [--embedded] [--before CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path

from bench.common import ROOT, Stopwatch, bench_stack, median, table


def run(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def person_env() -> dict[str, str]:
    """A person's shell: none of the console's own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "CELERY_", "DJANGO_"))}


def manual_round(repo, account, version: str, workdir: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The release guide's steps, each timed."""
    repo.commit_version(version, tag=f"v{version}")
    person = person_env()
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


def uv_round(repo, account, version: str, workdir: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The fastest way by hand: uv for every step, each timed."""
    from releases.steps.tools import uv_bin

    repo.commit_version(version, tag=f"v{version}")
    uv = uv_bin()
    # No uv.toml, no progress bars; the machine's certificates, as the console's tools have.
    person = {**person_env(), "UV_NO_CONFIG": "1", "UV_NO_PROGRESS": "1", "UV_SYSTEM_CERTS": "1"}
    dist = workdir / "dist"
    times: dict[str, float] = {}
    clock = Stopwatch()
    run([uv, "build", "--out-dir", str(dist), str(repo.path)], env=person)
    times["uv build"] = clock.seconds()
    clock = Stopwatch()
    run(
        [uv, "publish", "--publish-url", account.upload_url, *[str(p) for p in sorted(dist.iterdir())]],
        env={**person, "UV_PUBLISH_USERNAME": account.user, "UV_PUBLISH_PASSWORD": account.password},
    )
    times["uv publish"] = clock.seconds()
    venv = workdir / "venv"
    clock = Stopwatch()
    run([uv, "venv", "--python", sys.executable, str(venv)], env=person)
    times["uv venv"] = clock.seconds()
    clock = Stopwatch()
    run(
        [
            uv,
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            account.simple_url,
            f"{repo.name}=={version}",
        ],
        env=person,
    )
    times["uv pip install"] = clock.seconds()
    clock = Stopwatch()
    run([str(venv / "bin" / "python"), "-c", f"import {repo.module}"], env=person)
    times["import"] = clock.seconds()
    times["total"] = sum(times.values())
    return times


def console_round(  # type: ignore[no-untyped-def]
    repo, environment: str, version: str, *, root: Path = ROOT, env: dict[str, str] | None = None
) -> dict[str, float]:
    """The one headless command from ref to verified, timed, and what the jobs' rows say of the time between."""
    from releases.models import Job, Release

    repo.commit_version(version, tag=f"v{version}")
    times: dict[str, float] = {}
    clock = Stopwatch()
    command = ["publish", repo.name, version, "--ref", f"v{version}", "--to", environment, "--wait"]
    run([sys.executable, "manage.py", *command], cwd=root, env=env)
    times["publish --ref --wait"] = clock.seconds()
    times["total"] = times["publish --ref --wait"]
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
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="The console on SQLite and the embedded broker (its own var folder) instead of PostgreSQL and Redis.",
    )
    parser.add_argument("--before", type=Path, help="Another checkout of the console, run beside this one.")
    args = parser.parse_args(argv)
    where = "SQLite + the embedded broker" if args.embedded else "PostgreSQL + Redis"

    with bench_stack("bench-pipeline-", embedded=args.embedded) as stack:
        tmp, devpi = stack.tmp, stack.devpi
        from releases.services.projects import environment_create, project_create
        from tests.support.sample import SampleRepo
        from tests.support.worker import WorkerProcess

        worker = WorkerProcess(tmp / "logs", "bench-worker", env=dict(os.environ), pool=args.pool)
        # The checkout to compare with: its own queue and tool cache, this environment's packages.
        before_env = {
            **os.environ,
            "CELERY_QUEUE": os.environ["CELERY_QUEUE"] + "-before",
            "TOOL_CACHE_DIR": str(Path(os.environ["TOOL_CACHE_DIR"]).with_name("bench-cache-before")),
        }
        before_worker = (
            WorkerProcess(tmp / "logs", "bench-before", env=before_env, pool=args.pool, root=args.before)
            if args.before
            else None
        )
        try:
            worker.start()
            if before_worker is not None:
                before_worker.start()
            account = devpi.new_index()
            suffix = uuid.uuid4().hex[:8]
            repo = SampleRepo(tmp / "repo", name=f"bench-pkg-{suffix}")
            repo.commit_version("0.0.0")
            project_create(name=repo.name, source=str(repo.path), actor=None)
            before_repo = SampleRepo(tmp / "repo-before", name=f"bench-before-{suffix}")
            before_repo.commit_version("0.0.0")
            project_create(name=before_repo.name, source=str(before_repo.path), actor=None)
            environment = f"bench-{suffix}"
            environment_create(
                name=environment,
                upload_url=account.upload_url,
                index_url=account.simple_url,
                username=account.user,
                token=account.password,
                actor=None,
            )
            rounds: dict[str, dict[str, list[float]]] = {"guide": defaultdict(list), "uv": defaultdict(list)}
            rounds["console"] = defaultdict(list)
            rounds["before"] = defaultdict(list)
            for n in range(args.rounds + 1):
                a = manual_round(repo, account, f"1.{n}.0", tmp / f"guide-{n}")
                c = uv_round(repo, account, f"1.{n}.1", tmp / f"uv-{n}")
                # Before and after take turns going first.
                b: dict[str, float] = {}
                before: dict[str, float] = {}
                for name in ("after", "before") if n % 2 or not args.before else ("before", "after"):
                    if name == "after":
                        b = console_round(repo, environment, f"1.{n}.2")
                    elif args.before:
                        before = console_round(before_repo, environment, f"1.{n}.2", root=args.before, env=before_env)
                if n == 0:
                    continue  # warm-up: caches filled for all alike
                for name, times in (("guide", a), ("uv", c), ("console", b), ("before", before)):
                    for key, value in times.items():
                        rounds[name][key].append(value)
                said = f", before {before['total']:.2f} s" if before else ""
                print(
                    f"round {n}: guide {a['total']:.2f} s, uv {c['total']:.2f} s, console {b['total']:.2f} s{said}",
                    flush=True,
                )
        finally:
            worker.stop()
            if before_worker is not None:
                before_worker.stop()

    titles = {
        "guide": "(a) by hand, the release guide",
        "uv": "(c) by hand, uv for every step",
        "console": f"(b) the console on {where}, {args.pool} worker",
    }
    if args.before:
        titles["before"] = f"(b') the console at {args.before}, the same rounds"
    for name, title in titles.items():
        print()
        print(f"{title}, median of {args.rounds} rounds (seconds)")
        print(
            table(["step", "median", "min", "max"], [[k, median(v), min(v), max(v)] for k, v in rounds[name].items()])
        )
    guide, uv, console = (median(rounds[name]["total"]) for name in ("guide", "uv", "console"))
    if args.before:
        before_total = median(rounds["before"]["total"])
        print()
        print(f"before {before_total:.2f} s, after {console:.2f} s: {console - before_total:+.2f} s a release")
    print()
    print(
        f"console/guide = {console / guide:.2f}, console/uv = {console / uv:.2f} "
        f"(console {console:.2f} s on {where}, guide {guide:.2f} s, uv {uv:.2f} s, median of {args.rounds} rounds)"
    )


if __name__ == "__main__":
    main()
