"""Worker processes say they are alive: a row each, written every
``WORKER_HEARTBEAT_INTERVAL`` seconds while the worker runs and removed when
it stops. The dashboard counts the rows seen lately; a host that died
leaves a row that goes silent, and a later start under the same name takes
it over."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime

from django.db import DatabaseError, InterfaceError, connection
from django.utils import timezone

from releases.models import Worker

logger = logging.getLogger(__name__)


def worker_seen(name: str, *, started_at: datetime) -> None:
    """Record that worker ``name`` (Celery's node name) is alive now."""
    Worker.objects.update_or_create(
        name=name[:200],
        defaults={
            "hostname": socket.gethostname()[:200],
            "pid": os.getpid(),
            "started_at": started_at,
            "seen_at": timezone.now(),
        },
    )


def worker_gone(name: str) -> None:
    Worker.objects.filter(name=name[:200], pid=os.getpid()).delete()


class WorkerHeartbeat:
    """A thread that writes ``worker_seen`` every ``interval`` seconds until stopped.

    A database that is away (restarting, failing over) is not the worker's
    end: the beat is missed, and the next one tries again.
    """

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval
        self.started_at = timezone.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + 5)
        try:
            worker_gone(self.name)
        except (DatabaseError, InterfaceError):
            logger.warning("worker %s: could not remove its heartbeat; it goes silent instead", self.name)
        finally:
            connection.close()

    def _run(self) -> None:
        while True:
            try:
                worker_seen(self.name, started_at=self.started_at)
            except (DatabaseError, InterfaceError):
                logger.warning("worker %s: heartbeat missed (database unreachable)", self.name)
            finally:
                # No connection is held between beats: a pool process forked
                # from this one meanwhile must not inherit this thread's socket.
                connection.close()
            if self._stop.wait(self.interval):
                return
