"""What a Celery worker process does as it starts and stops, beside running
tasks: it keeps its heartbeat row (services/workers.py), which the
dashboard counts as a worker alive."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from releases.services.workers import WorkerHeartbeat

_heartbeat: WorkerHeartbeat | None = None


@worker_ready.connect(dispatch_uid="releases.worker_heartbeat_start")
def start_heartbeat(sender: Any, **_: Any) -> None:
    global _heartbeat
    _heartbeat = WorkerHeartbeat(str(sender.hostname), settings.WORKER_HEARTBEAT_INTERVAL)
    _heartbeat.start()


@worker_shutdown.connect(dispatch_uid="releases.worker_heartbeat_stop")
def stop_heartbeat(**_: Any) -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None
