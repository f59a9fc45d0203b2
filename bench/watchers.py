"""What open release pages cost while nothing on them changes: N watchers
(each a browser tab's poll of the page's live part, with the ETag of the
last answer, as a browser's cache sends it: a tick every second, and as
console.js does, the wait doubling with each unchanged answer up to the
page's most; ``--before``: as the pages polled before they backed off, a
request every 2 s) against gunicorn
on the bench database, each watching a release whose build job is running
(claimed, silent). The server's CPU time over the window, from /proc, is
the figure.

    python -m bench.watchers [--watchers 100] [--seconds 60] [--workers 2] [--before]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

from bench.common import bench_environment, ensure_database, scratch, setup_django, table
from bench.web import session_cookie, start_gunicorn
from tests.support.devpi import free_port

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of a process and its waited-for children, and of its live children."""
    total = 0.0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15]) / TICKS  # utime stime cutime cstime
    return total


def running_releases(count: int) -> list[str]:
    """Releases whose build job runs (claimed, silent): what a watcher watches."""
    from releases.models import Job
    from releases.services.jobs import job_claim
    from releases.services.projects import project_create
    from releases.services.releases import release_create, release_start_build

    run = uuid.uuid4().hex[:6]
    project = project_create(name=f"watch-{run}", source="https://git.example.org/watch.git", actor=None)
    paths = []
    for n in range(count):
        release = release_create(project=project, version=f"1.0.{n}", ref=f"v1.0.{n}", actor=None)
        job = Job.objects.get(release=release, kind=Job.Kind.BUILD)
        job_claim(job.pk, worker="bench-watchers")
        release_start_build(release)
        paths.append(f"/projects/{project.name}/releases/{release.version}/live/")
    return paths


def watch(
    url: str, cookie: str, until: float, counts: dict[int, int], lock: threading.Lock, tick: float, most: float
) -> None:
    """One tab: a tick every ``tick`` seconds; as console.js does, a request
    only once the wait since the last answer has passed, the wait doubling
    with each 304 up to ``most`` (``most`` == ``tick``: every tick asks)."""
    session = requests.Session()
    session.headers["Cookie"] = cookie
    session.headers["HX-Request"] = "true"
    etag = ""
    wait, answered = tick, -float("inf")
    next_tick = time.monotonic()
    while next_tick < until:
        if time.monotonic() - answered >= wait - tick / 2:
            headers = {"If-None-Match": etag} if etag else {}
            response = session.get(url, headers=headers, timeout=30)
            answered = time.monotonic()
            etag = response.headers.get("ETag", etag)
            wait = min(wait * 2, most) if response.status_code == 304 else tick
            with lock:
                counts[response.status_code] = counts.get(response.status_code, 0) + 1
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.monotonic()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--before", action="store_true", help="Ask every 2 s, as the pages did before they backed off.")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with scratch("bench-watchers-") as tmp:
        bench_environment(tmp / "var")
        ensure_database(os.environ["DATABASE_URL"])
        setup_django()
        from releases.views.live import LIVE_POLL

        tick = 2.0 if args.before else float(LIVE_POLL.every)
        most = tick if args.before else float(LIVE_POLL.most)
        cookie = session_cookie()
        paths = running_releases(min(args.watchers, 20))
        port = free_port()
        server = start_gunicorn(port, args.workers, tmp / "access.log")
        try:
            base = f"http://127.0.0.1:{port}"
            # Warm: every worker has imported what the page needs.
            for path in paths:
                requests.get(base + path, headers={"Cookie": cookie}, timeout=30).raise_for_status()
            counts: dict[int, int] = {}
            lock = threading.Lock()
            start = time.monotonic()
            until = start + args.seconds
            threads = [
                threading.Thread(
                    target=watch, args=(base + paths[n % len(paths)], cookie, until, counts, lock, tick, most)
                )
                for n in range(args.watchers)
            ]
            cpu_before = cpu_seconds(server.pid)
            for thread in threads:
                thread.start()
                time.sleep(tick / args.watchers)  # spread the polls over the interval, as tabs opened apart are
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - start
            cpu = cpu_seconds(server.pid) - cpu_before
        finally:
            server.terminate()
            server.wait(30)
    requests_made = sum(counts.values())
    share = 100 * cpu / elapsed
    print(
        table(
            ["watchers", "seconds", "requests", "304", "200", "server CPU s", "% of one core", "ms CPU a request"],
            [
                [
                    args.watchers,
                    round(elapsed, 1),
                    requests_made,
                    counts.get(304, 0),
                    counts.get(200, 0),
                    round(cpu, 2),
                    round(share, 1),
                    round(1000 * cpu / max(requests_made, 1), 2),
                ]
            ],
        )
    )
    polling = (
        "asking every 2 s (before)"
        if args.before
        else f"a tick every {tick:.0f} s, backing off to {most:.0f} s while unchanged"
    )
    print(f"{args.watchers} watchers of running release pages, {polling}: {share:.1f}% of one core (target < 10%)")


if __name__ == "__main__":
    main()
