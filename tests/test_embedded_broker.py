"""The embedded default's broker (console/broker.py): messages are whole
files, and a waiting worker takes one as soon as it lands."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue

# Far longer than any wait asserted below: a delivery in time is a wake-up, not a poll.
SLOW_POLL = 30.0


def options(root: Path, **extra: Any) -> dict[str, Any]:
    folders = {name: root / name for name in ("queue", "staging", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "staging_folder": str(folders["staging"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
        **extra,
    }


def connect(root: Path, **extra: Any) -> Connection:
    return Connection("filesystem://", transport="console.broker:Transport", transport_options=options(root, **extra))


def jobs_queue(root: Path) -> Queue:
    # kombu keeps the bindings it declared for the whole process, whatever
    # the folder: each test's queue has a name of its own.
    name = f"jobs-{root.parent.name}"
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def publish(root: Path, bodies: list[dict[str, int]], pause: float = 0.0) -> None:
    queue = jobs_queue(root)
    with connect(root) as connection:
        producer = Producer(connection.default_channel)
        for body in bodies:
            producer.publish(
                body, exchange=queue.exchange, routing_key=queue.routing_key, declare=[queue], serializer="json"
            )
            time.sleep(pause)


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
