"""Recording what passes through Redis, with MONITOR, during a test."""

from __future__ import annotations

import threading

import redis


class BrokerRecorder:
    """Every command Redis executes while recording, as MONITOR reports it."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.lines: list[str] = []
        self._monitor = self.client.monitor()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._monitor as monitor:
            for command in monitor.listen():
                self.lines.append(str(command.get("command", "")))
                if self._stop.is_set():
                    return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.client.ping()  # one more command wakes the listener
        self._thread.join(5)
