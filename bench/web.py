"""Page times against years of history: gunicorn on loopback, on the bench
database seeded by ``seed_history`` (10,000 releases, 100,000 jobs,
1,000,000 log lines), and ``wrk`` in another process as 20 concurrent
users, logged in. The pages come from bench/web.toml.

For each page: the server's own time per request (gunicorn's access log,
``%(M)s``) and what the users saw (wrk, queueing included), p50 and p95.

    python -m bench.web [--seconds N] [--users N] [--workers N] [--config PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import requests

from bench.common import ROOT, bench_environment, ensure_database, scratch, setup_django, table
from tests.support.devpi import free_port

HERE = Path(__file__).resolve().parent
SEED_PREFIX = "seed"


def seeded_ids(samples: int) -> dict[str, list[object]]:
    """Rows of the seeded history to fill the page templates with; seed it first if needed."""
    from releases.models import Job, Project, Release

    if not Project.objects.filter(name__startswith=f"{SEED_PREFIX}-").exists():
        print("seeding the bench database (seed_history, once)...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "bench.seed_history", "--prefix", SEED_PREFIX],
            cwd=ROOT,
            check=True,
        )
    rng = random.Random(1)
    seeded = Release.objects.filter(project__name__startswith=f"{SEED_PREFIX}-")
    releases = list(seeded.values_list("pk", "project__name", "version"))
    jobs = Job.objects.filter(release__project__name__startswith=f"{SEED_PREFIX}-")
    big = jobs.order_by("-log_lines", "-pk").values_list("pk", flat=True).first()
    job_ids = list(jobs.filter(log_lines__gt=0).values_list("pk", flat=True)[:50_000])
    projects = list(Project.objects.filter(name__startswith=f"{SEED_PREFIX}-").values_list("pk", "name"))
    sampled = rng.sample(releases, min(samples, len(releases)))
    return {
        "release_id": [pk for pk, _, _ in sampled],
        "release_path": [f"{name}/releases/{version}" for _, name, version in sampled],
        "project_name": [name for _, name in projects],
        "job_id": rng.sample(job_ids, min(samples, len(job_ids))),
        "big_job_id": [big] if big else [],
        "project_id": [pk for pk, _ in projects],
    }


def expand(template: str, ids: dict[str, list[object]]) -> list[str]:
    """The concrete paths for one page: one per sampled row where it takes one."""
    used = [name for name in ids if "{" + name + "}" in template]
    if not used:
        return [template]
    count = max(len(ids[name]) for name in used)
    return [template.format(**{name: ids[name][n % len(ids[name])] for name in used}) for n in range(count)]


def session_cookie() -> str:
    """A logged-in session for a staff user, made directly in the session store."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "releases.auth_backends.ConsoleBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


def start_gunicorn(port: int, workers: int, access_log: Path) -> subprocess.Popen[bytes]:
    error_log = (access_log.parent / "gunicorn.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "console.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--access-logfile",
            str(access_log),
            # Path, query, status and the server's time for the request in ms.
            "--access-logformat",
            "%(U)s?%(q)s %(s)s %(M)s",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        # Not our stdout: a reader of this program's output must see its end.
        stdout=error_log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=10)
                return process
            except requests.RequestException:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not start within 60 s")
    except BaseException:
        process.kill()
        process.wait()
        raise


def server_times(access_log: Path, offset: int) -> tuple[list[float], int]:
    """Milliseconds per request logged after ``offset``, and the new offset."""
    with access_log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    times = []
    for line in data.decode(errors="replace").splitlines():
        parts = line.rsplit(" ", 2)
        if len(parts) == 3 and parts[2].isdigit():
            times.append(float(parts[2]))
    return times, offset + len(data)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=HERE / "web.toml")
    parser.add_argument("--seconds", type=int, default=15, help="Load time per page.")
    parser.add_argument("--users", type=int, default=20, help="Concurrent connections.")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 2,
        help="gunicorn sync workers: one per core (the pages are CPU-bound; more only queue inside the server).",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    pages: dict[str, str] = tomllib.loads(args.config.read_text())["pages"]
    # Stopped with SIGTERM (timeout, Ctrl-C), still stop the server we started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with scratch("bench-web-") as tmp:
        bench_environment(tmp / "var")
        ensure_database(os.environ["DATABASE_URL"])
        setup_django()
        ids = seeded_ids(samples=500)
        cookie = session_cookie()
        from releases.models import Job, JobLogLine, Release

        counts = (Release.objects.count(), Job.objects.count(), JobLogLine.objects.count())
        port = free_port()
        access_log = tmp / "access.log"
        server = start_gunicorn(port, args.workers, access_log)
        rows = []
        try:
            offset = 0
            for name, template in pages.items():
                paths = expand(template, ids)
                check = requests.get(
                    f"http://127.0.0.1:{port}{paths[0]}", headers={"Cookie": cookie}, timeout=30, allow_redirects=False
                )
                if check.status_code != 200:
                    raise SystemExit(f"{name}: {paths[0]} answered {check.status_code}; fix bench/web.toml")
                path_file = tmp / "paths.txt"
                path_file.write_text("\n".join(paths) + "\n")
                _, offset = server_times(access_log, offset)  # skip the check request
                result = subprocess.run(
                    [
                        shutil.which("wrk") or "wrk",
                        "--threads",
                        "2",
                        "--connections",
                        str(args.users),
                        "--duration",
                        f"{args.seconds}s",
                        "--timeout",
                        "10s",
                        "--script",
                        str(HERE / "wrk_report.lua"),
                        f"http://127.0.0.1:{port}",
                        "--",
                        str(path_file),
                    ],
                    env={**os.environ, "BENCH_COOKIE": cookie},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
                total, bad_status, socket_errors, client_p50, client_p95, _ = line.split()[1:]
                time.sleep(0.5)  # let the access log catch up
                times, offset = server_times(access_log, offset)
                rows.append(
                    {
                        "page": name,
                        "requests": int(total),
                        "errors": int(bad_status) + int(socket_errors),
                        "server_p50": percentile(times, 50),
                        "server_p95": percentile(times, 95),
                        "client_p50": float(client_p50),
                        "client_p95": float(client_p95),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        finally:
            server.terminate()
            server.wait(20)

    print()
    print(
        f"{counts[0]:,} releases, {counts[1]:,} jobs, {counts[2]:,} log lines; {args.users} users, "
        f"{args.seconds} s per page, gunicorn {args.workers} sync workers; times in ms"
    )
    print(
        table(
            ["page", "requests", "errors", "server p50", "server p95", "users' p50", "users' p95"],
            [
                [
                    r["page"],
                    r["requests"],
                    r["errors"],
                    r["server_p50"],
                    r["server_p95"],
                    r["client_p50"],
                    r["client_p95"],
                ]
                for r in rows
            ],
        )
    )
    worst = max(rows, key=lambda r: r["server_p95"])
    print()
    print(f"worst server p95 {worst['server_p95']:.0f} ms ({worst['page']}); target < 100 ms")


if __name__ == "__main__":
    main()
