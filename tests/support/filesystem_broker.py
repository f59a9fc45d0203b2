"""kombu connections on the embedded default's transport (console/broker.py),
in a folder of the test's own. No Django here: a producer process started
with ``spawn`` imports this module alone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kombu import Connection, Exchange, Producer, Queue


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
