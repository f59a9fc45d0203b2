"""A console of its own for fault tests: a private PostgreSQL cluster and
Redis, worker and beat processes on them, and the headless commands.

Everything here is started by the test and stopped by PID (or ``pg_ctl`` on
its own data folder); the machine's shared services are never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, connections

from tests.support.services import PostgresCluster, RedisServer
from tests.support.worker import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
ALIAS = "chaos"
DATABASE = "console_chaos"
T = TypeVar("T")

# Short periods, so that the reaper's work is seen within a test.
PERIODS = {
    "JOB_HEARTBEAT_INTERVAL": "1",
    "JOB_STALE_AFTER": "4",
    "JOB_REQUEUE_AFTER": "3",
    "REAPER_INTERVAL": "1",
    "JOB_MAX_ATTEMPTS": "3",
}


def reaper_period() -> float:
    """How long the reaper may take to notice a lost worker or message."""
    return float(PERIODS["JOB_STALE_AFTER"]) + float(PERIODS["REAPER_INTERVAL"])


class BeatProcess:
    """``celery beat``: sends the reaper's task every REAPER_INTERVAL seconds."""

    def __init__(self, logdir: Path, env: dict[str, str]) -> None:
        self.logdir = logdir
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.logdir / "beat.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "console",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.logdir / "beat-schedule"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class ChaosStack:
    root: Path
    redis: RedisServer = field(init=False)
    postgres: PostgresCluster = field(init=False)
    env: dict[str, str] = field(init=False)
    worker: WorkerProcess = field(init=False)
    beat: BeatProcess = field(init=False)

    def __post_init__(self) -> None:
        self.redis = RedisServer(self.root / "redis")
        self.postgres = PostgresCluster(self.root / "postgres")
        self.env = {
            **os.environ,
            **PERIODS,
            "DATABASE_URL": "",
            "REDIS_URL": self.redis.url(0),
            # Artifacts and job folders of its own: the session's worker
            # names its job folders by the same small ids.
            "CONSOLE_VAR_DIR": str(self.root / "var"),
            "CELERY_QUEUE": "console-chaos",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self) -> None:
        """1. Redis. 2. A PostgreSQL cluster with the console's tables.
        3. A worker and beat on them. 4. A read-only alias for the test."""
        self.redis.start()
        self.postgres.init()
        self.postgres.start()
        self.postgres.create_database(DATABASE)
        self.env["DATABASE_URL"] = self.postgres.url(DATABASE)
        self.manage("migrate", "--noinput")
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        self.worker = WorkerProcess(logs, "chaos-worker", env=self.env)
        self.worker.start()
        self.beat = BeatProcess(logs, self.env)
        self.beat.start()
        default = connections.settings["default"]
        connections.settings[ALIAS] = {
            **default,
            "NAME": DATABASE,
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(self.postgres.port),
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "TEST": {**default.get("TEST", {}), "NAME": None},
        }

    def stop(self) -> None:
        if ALIAS in connections.settings:
            connections[ALIAS].close()
            del connections.settings[ALIAS]
        for part in ("beat", "worker"):
            if hasattr(self, part):
                getattr(self, part).stop()
        self.redis.stop()
        self.postgres.stop("immediate")

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], env=self.env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def restart_worker(self) -> None:
        """SIGKILL the worker, as the OOM killer would, and start a new one."""
        self.worker.kill()
        self.worker.start()

    @contextmanager
    def worker_held(self) -> Iterator[None]:
        """No worker while the body runs, then a new one.

        A release's build is sent as its row commits, so without this it
        may start, and end, while the test is still running the next
        ``manage.py`` command, before it looks for a running job. Held, the
        jobs wait in Redis until the test is about to watch for them.
        """
        self.worker.stop()
        try:
            yield
        finally:
            self.worker.start()


def read(query: Callable[[], T]) -> T:
    """Run a read on the chaos database, riding out its restarts."""
    for _ in range(200):
        try:
            return query()
        except (DatabaseError, InterfaceError):
            connections[ALIAS].close()
            time.sleep(0.1)
    return query()


def wait_until(predicate: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T | None:
    """Poll ``predicate`` until it returns something; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read(predicate)
        if value:
            return value
        time.sleep(interval)
    return None
