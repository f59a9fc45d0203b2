"""The embedded default's broker (console/broker.py): messages are whole
files that carry a job's id and outlast a worker, and a waiting worker takes
one as soon as it lands."""

from __future__ import annotations

import base64
import json
import multiprocessing
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection, Consumer, Queue

from releases.management.commands.run_embedded import worker_command
from tests.support.embedded import ROOT, embedded_env, embedded_manage
from tests.support.filesystem_broker import connect, jobs_queue, options, publish

# Far longer than any wait asserted below: a delivery in time is a wake-up, not a poll.
SLOW_POLL = 30.0


@pytest.fixture
def broker_root(tmp_path: Path) -> Path:
    return tmp_path / "broker"


@pytest.fixture
def jobs(broker_root: Path) -> Queue:
    return jobs_queue(broker_root)


@pytest.fixture
def consumer_connection(broker_root: Path) -> Iterator[Connection]:
    with connect(broker_root, polling_interval=SLOW_POLL) as connection:
        connection.connect()
        yield connection


def test_a_worker_looking_all_the_time_never_takes_a_message_half_written(broker_root, jobs):
    """kombu's own transport writes in place: read this way, about one message in twenty came out empty."""
    count = 2000
    options(broker_root)
    producer = multiprocessing.get_context("spawn").Process(
        target=publish, args=(broker_root, [{"job": n} for n in range(count)], 0.0005)
    )
    with connect(broker_root) as connection:
        channel = connection.default_channel
        producer.start()
        received, deadline = [], time.monotonic() + 120
        while len(received) < count and time.monotonic() < deadline:
            try:
                # The raw message as the worker's loop reads it, as fast as it can.
                received.append(channel.message_to_python(channel._get(jobs.name)).decode())
            except Empty:
                continue
        producer.join(30)
    assert producer.exitcode == 0
    assert received == [{"job": n} for n in range(count)]
    assert not any((broker_root / "staging").iterdir())


def test_a_waiting_worker_takes_a_message_as_soon_as_it_lands(broker_root, jobs, consumer_connection):
    arrivals: list[float] = []
    consumer = Consumer(consumer_connection, [jobs], accept=["json"])
    consumer.register_callback(lambda body, message: (arrivals.append(time.monotonic()), message.ack()))
    with consumer:
        sender = threading.Timer(0.5, publish, args=(broker_root, [{"job": 1}]))
        sent = time.monotonic() + 0.5
        sender.start()
        consumer_connection.drain_events(timeout=10)
        sender.join()
    assert len(arrivals) == 1
    assert arrivals[0] - sent < 0.5  # milliseconds on a quiet machine; the poll alone would take 30 s


def test_a_worker_at_its_prefetch_limit_takes_the_next_message_when_it_acknowledges_one(
    broker_root, jobs, consumer_connection
):
    publish(broker_root, [{"job": 1}, {"job": 2}])
    delivered: list[tuple[dict[str, int], Any]] = []
    consumer = Consumer(consumer_connection, [jobs], accept=["json"], prefetch_count=1)
    consumer.register_callback(lambda body, message: delivered.append((body, message)))
    with consumer:
        consumer_connection.drain_events(timeout=5)
        assert [body for body, _ in delivered] == [{"job": 1}]
        # The first task ends, on another thread, as a prefork worker's result handler acknowledges it.
        acked = time.monotonic() + 0.5
        threading.Timer(0.5, delivered[0][1].ack).start()
        consumer_connection.drain_events(timeout=10)
    assert [body for body, _ in delivered] == [{"job": 1}, {"job": 2}]
    assert time.monotonic() - acked < 0.5


def test_a_wait_with_nothing_to_deliver_ends_at_its_timeout(jobs, consumer_connection):
    consumer = Consumer(consumer_connection, [jobs], accept=["json"])
    with consumer:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            consumer_connection.drain_events(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2


class EmbeddedWorker:
    """The worker as ``make run`` starts it, on a var folder of the test's own."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.log_path = var_dir.parent / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = subprocess.Popen(
            worker_command("all"),
            cwd=ROOT,
            env=embedded_env(self.var_dir),
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while b" ready." not in self.log_path.read_bytes()[offset:]:
            assert self.process.poll() is None and time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def job_row(var_dir: Path, release_version: str) -> sqlite3.Row:
    with closing(sqlite3.connect(var_dir / "console.sqlite3")) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT job.* FROM releases_job job JOIN releases_release release ON release.id = job.release_id"
            " WHERE release.version = ?",
            (release_version,),
        ).fetchone()
    assert row is not None
    return row


def claimed_row(var_dir: Path, version: str, within: float) -> sqlite3.Row:
    deadline = time.monotonic() + within
    while (row := job_row(var_dir, version))["started_at"] is None:
        assert time.monotonic() < deadline, f"job of {version} not claimed within {within} s"
        time.sleep(0.02)
    return row


@pytest.fixture
def embedded_worker(tmp_path: Path) -> Iterator[EmbeddedWorker]:
    var_dir = tmp_path / "var"
    assert embedded_manage(var_dir, "migrate").returncode == 0
    # The build fails at once (no such source): what is measured is the claim.
    added = embedded_manage(var_dir, "project_add", "pkg", "--source", str(tmp_path / "no-such-source"))
    assert added.returncode == 0, added.stderr
    worker = EmbeddedWorker(var_dir)
    yield worker
    worker.stop()


def test_a_job_queued_while_the_worker_restarts_waits_on_disk_as_its_id_alone_and_runs_when_it_is_back(
    embedded_worker,
):
    var_dir = embedded_worker.var_dir
    embedded_worker.start()
    embedded_worker.stop()

    created = embedded_manage(var_dir, "release_create", "pkg", "1.0.0", "--ref", "main")
    assert created.returncode == 0, created.stderr
    (message,) = (var_dir / "broker" / "queue").iterdir()
    envelope = json.loads(message.read_text())
    args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
    assert envelope["headers"]["task"] == "releases.tasks.run_job"
    assert (args, kwargs) == ([job_row(var_dir, "1.0.0")["id"]], {})

    embedded_worker.start()
    claimed_row(var_dir, "1.0.0", within=30)
    assert not any((var_dir / "broker" / "queue").iterdir())


def test_a_running_worker_claims_each_job_at_once(embedded_worker):
    """kombu's own transport left each job waiting for a poll: half a second on average, up to one."""
    var_dir = embedded_worker.var_dir
    embedded_worker.start()
    waits = []
    for n in range(3):
        created = embedded_manage(var_dir, "release_create", "pkg", f"2.{n}.0", "--ref", "main")
        assert created.returncode == 0, created.stderr
        row = claimed_row(var_dir, f"2.{n}.0", within=10)
        waits.append(datetime.fromisoformat(row["started_at"]) - datetime.fromisoformat(row["queued_at"]))
    assert max(wait.total_seconds() for wait in waits) < 0.3, waits
