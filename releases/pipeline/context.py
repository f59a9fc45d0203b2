"""What a running job carries: its claim, its folder and its log.

The log is written by a background thread so that a tool printing fast is
never slowed by the database: lines go into a queue, and the thread stores
them in batches, beats the heartbeat, and notices when the job is no longer
ours.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Max
from django.utils import timezone

from releases.models import Job, JobLogLine
from releases.pipeline.errors import JobLost
from releases.redaction import redact
from releases.services.jobs import Claim, job_heartbeat, job_set_step

MAX_LINE = 10_000
BATCH = 2000
FLUSH_EVERY = 0.1


class JobLog:
    """A redacting, batching writer of one job's log lines."""

    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.lost = threading.Event()
        self._queue: queue.SimpleQueue[tuple[str, datetime] | None] = queue.SimpleQueue()
        last = JobLogLine.objects.filter(job_id=claim.job_id).aggregate(n=Max("number"))["n"]
        self._number = last or 0
        self._thread = threading.Thread(target=self._run, name=f"job-{claim.job_id}-log", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self._queue.put((redact(line[:MAX_LINE]), timezone.now()))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        last_beat = 0.0
        done = False
        try:
            while not done:
                batch: list[JobLogLine] = []
                deadline = time.monotonic() + FLUSH_EVERY
                while len(batch) < BATCH:
                    try:
                        item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0001))
                    except queue.Empty:
                        break
                    if item is None:
                        done = True
                        break
                    self._number += 1
                    text, at = item
                    batch.append(JobLogLine(job_id=self.claim.job_id, number=self._number, text=text, created_at=at))
                if batch:
                    JobLogLine.objects.bulk_create(batch)
                now = time.monotonic()
                if batch or now - last_beat >= settings.JOB_HEARTBEAT_INTERVAL or done:
                    if not job_heartbeat(self.claim, log_lines=self._number):
                        self.lost.set()
                    last_beat = now
        except Exception:  # the database went away: the reaper will notice the silence
            self.lost.set()
        finally:
            connection.close()


@dataclass
class JobContext:
    """Everything a step needs: the job, its private folder, and its log."""

    job: Job
    claim: Claim
    log: JobLog
    workdir: Path
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, job: Job, claim: Claim) -> JobContext:
        workdir = Path(settings.JOB_WORK_ROOT) / f"job-{job.pk}-{claim.attempt}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        (workdir / "home").mkdir()
        return cls(job=job, claim=claim, log=JobLog(claim), workdir=workdir)

    def close(self) -> None:
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        close_old_connections()

    def step(self, text: str) -> None:
        """Name what the job is doing now (shown beside its elapsed time)."""
        self.check_owned()
        self.log.write(f"==> {text}")
        job_set_step(self.claim, text)

    def check_owned(self) -> None:
        if self.log.lost.is_set():
            raise JobLost(f"job {self.claim.job_id} attempt {self.claim.attempt} was given to another worker")
