"""Log ingestion: what storing a job's output costs the job, and whether the
release page's log tail stays fast while a job writes.

A command prints 200,000 lines, doing a fixed amount of work for each (as a
compiler or a test runner does). It runs twice:

1. through ``releases.steps.runner.run`` inside a real job workspace:
   every line redacted, queued, and stored in batches by the log thread;
   timed until the last line is in the database;
2. the same command with its output sent to /dev/null.

Meanwhile another process asks for the log tail, the page's query
(``JobLogLine.objects.filter(job=...).order_by('-number')[:200]``), every
100 ms, and times it.

Besides the times it counts the CPU the ingestion costs: the worker's own
(the runner and the log thread), the database backend's that stores the
lines (read from /proc when PostgreSQL runs on this machine), and the
command's (more when it writes into a pipe than into /dev/null).

    python -m bench.logs [--lines N] [--work N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing.synchronize import Event
from pathlib import Path

from bench.common import Stopwatch, bench_environment, ensure_database, median, scratch, setup_django, table

SCRIPT = """\
import hashlib, sys
lines, work = int(sys.argv[1]), int(sys.argv[2])
block = b"x" * 256
for i in range(lines):
    digest = block
    for _ in range(work):
        digest = hashlib.sha256(digest).digest()
    print(f"[{i:>7}] compiling module_{i % 977}.c -> {digest.hex()[:32]}")
"""


def tail_prober(job_id: int, stop: Event, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Ask for the last 200 lines every 100 ms until told to stop; send back the timings."""
    setup_django()
    from releases.models import JobLogLine

    timings: list[tuple[float, int]] = []
    while not stop.is_set():
        clock = Stopwatch()
        rows = list(JobLogLine.objects.filter(job_id=job_id).order_by("-number").values_list("number", "text")[:200])
        timings.append((clock.seconds() * 1000, rows[0][0] if rows else 0))
        time.sleep(0.1)
    results.put(timings)


class BackendClock(threading.Thread):
    """The CPU time of the database backends that store a job's lines.

    Polls pg_stat_activity for the backend whose last statement was the log
    thread's COPY or heartbeat, and its /proc entry (readable when the
    database runs on this machine) until it ends; None when unreadable.
    """

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self._ticks: dict[int, int] = {}
        self._readable = True
        self.own_cpu = 0.0  # this thread's, not to be counted as the worker's

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(0.05):
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND (query LIKE 'COPY releases_joblogline %' OR query LIKE 'UPDATE \"releases_job\" SET \"heartbeat_at\"%')"
                ).fetchall()
                for pid in {row[0] for row in rows} | set(self._ticks):
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        if pid not in self._ticks:  # never read: the database runs elsewhere
                            self._readable = False
                        continue
                    self._ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
                self.own_cpu = time.thread_time()

    def seconds(self) -> float | None:
        self.stop.set()
        self.join()
        if not self._readable or not self._ticks:
            return None
        return sum(self._ticks.values()) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--pairs", type=int, default=3, help="Interleaved (/dev/null, job log) runs.")
    parser.add_argument("--work", type=int, default=60, help="sha256 rounds per line: the command's own work.")
    args = parser.parse_args(argv)

    with scratch("bench-logs-") as tmp:
        bench_environment(tmp / "var")
        ensure_database(os.environ["DATABASE_URL"])
        setup_django()
        from django.db import connection

        from releases.models import Job, JobLogLine, Project, Release
        from releases.services.job_log import workspace_close, workspace_open
        from releases.services.jobs import job_claim
        from releases.steps import runner

        script = tmp / "noisy.py"
        script.write_text(SCRIPT)
        argv_ = [sys.executable, str(script), str(args.lines), str(args.work)]

        # Rows made directly: a fixture for the benchmark, not a release anyone asked for.
        project = Project.objects.create(name=f"bench-logs-{uuid.uuid4().hex[:8]}", source=str(tmp))
        release = Release.objects.create(project=project, version="1.0.0", ref="main")

        # The same environment as through the runner (unbuffered output, one write per line).
        tool_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        devnull: list[float] = []
        returned: list[float] = []
        ingested: list[float] = []
        cpu: list[float] = []
        database_cpu: list[float] = []
        command_cpu: dict[str, list[float]] = {"devnull": [], "log": []}
        timings: list[tuple[float, int]] = []
        stored = 0
        # Interleaved pairs, so that the machine's other load hits both alike.
        for _ in range(args.pairs):
            before = children_cpu()
            clock = Stopwatch()
            subprocess.run(argv_, stdout=subprocess.DEVNULL, check=True, env=tool_env)
            devnull.append(clock.seconds())
            command_cpu["devnull"].append(children_cpu() - before)

            job = Job.objects.create(kind=Job.Kind.BUILD, release=release)
            claim = job_claim(job.pk, worker="bench")
            assert claim is not None
            stop = multiprocessing.Event()
            results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
            connection.close()
            prober = multiprocessing.get_context("fork").Process(target=tail_prober, args=(job.pk, stop, results))
            prober.start()
            ctx = workspace_open(job, claim)
            cpu_before = time.process_time()
            backend = BackendClock(os.environ["DATABASE_URL"])
            backend.start()
            before = children_cpu()
            clock = Stopwatch()
            runner.run(ctx, argv_, show=["python", "noisy.py"])
            returned.append(clock.seconds())
            command_cpu["log"].append(children_cpu() - before)
            workspace_close(ctx)
            ingested.append(clock.seconds())
            backend_seconds = backend.seconds()
            cpu.append(time.process_time() - cpu_before - backend.own_cpu)
            if backend_seconds is not None:
                database_cpu.append(backend_seconds)
            stop.set()
            timings += results.get(timeout=60)
            prober.join()
            stored = JobLogLine.objects.filter(job=job).count()

    overheads = [(i - d) / d * 100 for i, d in zip(ingested, devnull, strict=True)]
    overhead = median(overheads)
    during = [ms for ms, newest in timings if newest > 0]
    print(f"{args.lines} lines, {args.work} sha256 rounds per line, {args.pairs} pairs; {stored} lines stored each")
    print(
        table(
            ["measure", "value"],
            [
                ["command to /dev/null (s, median)", median(devnull)],
                ["through the job log: command returned (s, median)", median(returned)],
                ["through the job log: last line stored (s, median)", median(ingested)],
                ["worker CPU for the log (s, median)", median(cpu)],
                ["database CPU for the log (s, median)", median(database_cpu) if database_cpu else "not readable"],
                [
                    "command CPU, to /dev/null / through the job log (s, median)",
                    f"{median(command_cpu['devnull']):.3f} / {median(command_cpu['log']):.3f}",
                ],
                ["ingestion overhead per pair (%)", " ".join(f"{o:.1f}" for o in overheads)],
                ["ingestion overhead (%, median)", f"{overhead:.1f}"],
                ["ingestion rate (lines/s)", f"{stored / median(ingested):,.0f}"],
                ["tail queries while it ran", len(during)],
                ["tail query p50 (ms)", percentile(during, 50)],
                ["tail query p95 (ms)", percentile(during, 95)],
                ["tail query max (ms)", max(during)],
            ],
        )
    )
    print()
    print(
        f"ingestion overhead {overhead:.1f}% (target <= 10%), "
        f"log tail p95 {percentile(during, 95):.1f} ms (target < 100 ms) over {len(during)} queries"
    )


if __name__ == "__main__":
    main()
