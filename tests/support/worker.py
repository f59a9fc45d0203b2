"""Real Celery worker processes for tests, started and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection


def child_process_env() -> dict[str, str]:
    """The environment for a child process that must use the test database and queue."""
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE}


class WorkerProcess:
    """One ``celery worker`` process on the test database and queue."""

    def __init__(
        self,
        logdir: Path,
        name: str = "worker",
        *,
        env: dict[str, str] | None = None,
        pool: str = "solo",
        root: Path | None = None,
    ) -> None:
        self.logdir = logdir
        # The checkout whose code the worker runs (another one to compare with).
        self.root = root or Path(__file__).resolve().parents[2]
        self.name = name
        self._env = env
        self.pool = pool
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = logdir / f"{name}.log"
        self.starts = 0

    def env(self) -> dict[str, str]:
        if self._env is not None:
            return self._env
        return child_process_env()

    def start(self) -> None:
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "console",
                "worker",
                "--pool",
                self.pool,
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--hostname",
                f"{self.name}-{self.starts}@%h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            cwd=self.root,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited; see {self.log_path}")
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                if b" ready." in handle.read():
                    return
            time.sleep(0.1)
        raise RuntimeError("the worker did not become ready within 60 s")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost host would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class WorkerPair:
    """A builder and a publisher, as the console runs in production
    (docs/security.md): the builder runs the jobs that run package code and
    holds no token key ring, the publisher runs the rest. One worker to the
    tests that start, stop or kill it."""

    def __init__(self, logdir: Path) -> None:
        base = child_process_env()
        builder = {k: v for k, v in base.items() if k != "CONSOLE_TOKEN_KEYS"}
        self.builder = WorkerProcess(logdir, "builder", env={**builder, "WORKER_ROLE": "builder"})
        self.publisher = WorkerProcess(logdir, "publisher", env={**base, "WORKER_ROLE": "publisher"})
        self.processes = (self.builder, self.publisher)

    def start(self) -> None:
        for process in self.processes:
            if not process.alive():
                process.start()

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def alive(self) -> bool:
        return all(process.alive() for process in self.processes)

    def log_text(self) -> str:
        return "".join(process.log_text() for process in self.processes)
