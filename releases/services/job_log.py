"""A running job's log and workspace.

The log is written by a background thread so that a tool printing fast is
never slowed by the database: lines go into a queue with their time, and the
thread redacts them a batch at a time, stores them (COPY on PostgreSQL),
beats the heartbeat, and notices when the job is no longer ours.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Max

from releases.models import Job, JobLogLine
from releases.redaction import redact
from releases.services.jobs import Claim, job_heartbeat, job_set_step
from releases.steps.workspace import Workspace, private_folder

# At most this many lines in one COPY; a backlog is worked off in such batches.
BATCH = 10_000
FLUSH_EVERY = 0.1

Chunk = tuple[list[str], float]


class JobLog:
    """A redacting, batching writer of one job's log lines."""

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.lost = threading.Event()
        self.full = threading.Event()
        # What the commands printed so far, in characters (their lines and
        # line ends), against JOB_LOG_MAX_BYTES.
        self._printed = 0
        # Chunks of lines with the time they arrived, or None to stop.
        self._queue: queue.SimpleQueue[Chunk | None] = queue.SimpleQueue()
        self._closing = threading.Event()
        last = JobLogLine.objects.filter(job_id=claim.job_id).aggregate(n=Max("number"))["n"]
        self._number = last or 0
        self._thread = threading.Thread(target=self._run, name=f"job-{claim.job_id}-log", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        """Queue the console's own ``text`` (a step, a command line, a
        reason): always kept. Redacted before it is stored."""
        self._put(self._cut(text.splitlines() or [""]))

    def write_lines(self, lines: list[str]) -> None:
        """Queue lines that arrived together (one read of a tool's output).

        This is package code's output: each line is cut at JOB_LOG_MAX_LINE
        characters, and once the job's commands printed JOB_LOG_MAX_CHARS
        nothing more of theirs is kept (``full`` is set, and a line says so)."""
        if not lines or self.full.is_set():
            return
        kept = self._cut(lines)
        size = sum(map(len, kept)) + len(kept)
        room = settings.JOB_LOG_MAX_CHARS - self._printed
        self._printed += size
        if size > room:
            # Up to the limit, and not a line more.
            for n, line in enumerate(kept):
                room -= len(line) + 1
                if room < 0:
                    kept = kept[:n]
                    break
            self.full.set()
            kept.append(
                f"==> output cut: this job's commands printed more than {settings.JOB_LOG_MAX_CHARS:,} characters"
            )
        self._put(kept)

    @staticmethod
    def _cut(lines: list[str]) -> list[str]:
        longest = settings.JOB_LOG_MAX_LINE
        return [line if len(line) <= longest else f"{line[:longest]} [cut at {longest:,} characters]" for line in lines]

    def _put(self, lines: list[str]) -> None:
        self._queue.put((lines, time.time()))

    def close(self) -> None:
        self._closing.set()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        last_beat = 0.0
        done = False
        full = False
        try:
            while not done:
                batch, done, full = self._next_batch(linger=not full)
                if batch:
                    self._store(batch)
                now = time.monotonic()
                if batch or now - last_beat >= settings.JOB_HEARTBEAT_INTERVAL or done:
                    if not job_heartbeat(self.claim, log_lines=self._number):
                        self.lost.set()
                    last_beat = now
        except Exception:  # the database went away: the reaper will notice the silence
            self.lost.set()
        finally:
            connection.close()

    def _next_batch(self, *, linger: bool) -> tuple[list[Chunk], bool, bool]:
        """The chunks to store next, whether the log is closed, and whether
        the batch stopped at ``BATCH`` lines (more are waiting).

        Waits up to ``FLUSH_EVERY`` for a first chunk, then ``FLUSH_EVERY``
        more before it takes what else came: a tool printing fast wakes this
        thread ten times a second, not once for each read of its output, and
        each COPY carries more lines. It does not linger while working off a
        backlog, nor once the log is closing (the last lines go in at once).
        """
        try:
            item = self._queue.get(timeout=FLUSH_EVERY)
        except queue.Empty:
            return [], False, False
        if linger:
            self._closing.wait(FLUSH_EVERY)
        batch: list[Chunk] = []
        size = 0
        while item is not None:
            batch.append(item)
            size += len(item[0])
            if size >= BATCH:
                return batch, False, True
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False, False
        return batch, True, False

    def _store(self, batch: list[Chunk]) -> None:
        """Store chunks of lines: COPY on PostgreSQL, in its binary format
        (no text to escape, no number or time for the server to parse)."""
        if connection.vendor != "postgresql":
            JobLogLine.objects.bulk_create(
                JobLogLine(job_id=job_id, number=number, created_at=created, text=text)
                for job_id, number, created, text in self._rows(batch)
            )
            return
        table = JobLogLine._meta.db_table
        # Reference: https://www.psycopg.org/psycopg3/docs/basic/copy.html (binary copy)
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(f"COPY {table} (job_id, number, created_at, text) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            # The columns' own types: bigint, integer, timestamptz, text.
            copy.set_types(["int8", "int4", "timestamptz", "text"])
            for row in self._rows(batch):
                copy.write_row(row)

    def _rows(self, batch: list[Chunk]) -> Iterator[tuple[int, int, datetime, str]]:
        """The chunks' lines, redacted and numbered on from the last.

        Redacting a chunk as one text is the same as line by line (no token
        pattern crosses a line end) at a fraction of the cost. PostgreSQL
        refuses NUL in text, and one such byte from a tool must not lose the
        whole log, so it becomes U+FFFD.
        """
        for lines, at in batch:
            created = datetime.fromtimestamp(at, UTC)
            for text in redact("\n".join(lines).replace("\x00", "\ufffd")).split("\n"):
                self._number += 1
                yield self.claim.job_id, self._number, created, text


def workspace_open(job: Job, claim: Claim) -> Workspace:
    """The job's private folder (made empty) and its log, for one attempt."""
    workdir = Path(settings.JOB_WORK_ROOT) / f"job-{job.pk}-{claim.attempt}"
    for folder in (workdir, private_folder(workdir)):
        shutil.rmtree(folder, ignore_errors=True)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    # Only the worker enters these; a sandbox is given the job's folder as its own.
    workdir.mkdir(mode=0o700)
    private_folder(workdir).mkdir(mode=0o700)
    (workdir / "home").mkdir()
    return Workspace(job_id=job.pk, workdir=workdir, log=JobLog(claim), on_step=lambda text: job_set_step(claim, text))


def workspace_close(ws: Workspace) -> None:
    """Store the last lines, and remove the folder."""
    assert isinstance(ws.log, JobLog)
    ws.log.close()
    # rmtree removes links, never what they point to: the folder may be the package's.
    for folder in (ws.workdir, ws.private):
        shutil.rmtree(folder, ignore_errors=True)
    close_old_connections()
