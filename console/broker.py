"""The embedded default's broker: kombu's filesystem transport, with whole
messages and a worker that wakes when one lands.

Messages stay files in a folder (``var/broker/queue``): nothing to install,
and a message waits there across worker restarts. Two things change:

* kombu writes a message file in place. A worker listing the folder while
  it is being written moves it away empty and fails to decode it: the
  message is lost and the worker's consumer raises. Rare when a worker looks
  once a second; common when it looks at once. Here a message is written
  beside the queue and renamed into it: a rename is atomic, so a reader sees
  a whole message or none.
* kombu's worker loop sleeps ``polling_interval`` (1 s) after each empty
  look, so every job waited half a second on average. Here it sleeps on an
  inotify watch of the queue folder and on a pipe that an acknowledgement
  writes to (a worker at its prefetch limit may take a waiting message as
  soon as a task ends); the poll interval remains as a fallback. A worker
  told to stop ends its wait at once too (Celery looks for a shutdown only
  between two waits, 2 s apart).

Settings (``console/settings.py``) select it with
``CELERY_BROKER_TRANSPORT = "console.broker:Transport"``; the transport
option ``staging_folder`` names where messages are written before the
rename (on the queue's file system).
"""

from __future__ import annotations

import contextlib
import os
import select
import uuid
import weakref
from pathlib import Path
from queue import Empty
from time import monotonic, monotonic_ns
from typing import Any, cast

from celery.signals import worker_shutting_down
from inotify_simple import INotify, flags
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    # The stubs (celery-types) leave out the keywords kombu passes on.
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # kombu's form of name, with the time in nanoseconds, zero-padded:
        # the folder sorted by name is the order of sending (kombu's
        # milliseconds let two messages of one millisecond swap).
        name = f"{monotonic_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        staging = Path(self.transport_options["staging_folder"]) / name
        try:
            staging.write_bytes(str_to_bytes(dumps(message)))
            os.replace(staging, Path(self.data_folder_out) / name)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {name!r} to the queue folder") from exc

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        cast(Transport, self.connection).wake()

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue)
        cast(Transport, self.connection).wake()


class Transport(filesystem.Transport):
    Channel = Channel
    driver_name = "filesystem (atomic, woken by inotify)"

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self._folder = str(client.transport_options.get("data_folder_in", "data_in"))  # kombu's default
        # Made by the first drain_events: only a consumer waits.
        self._watch: INotify | None = None
        self._wake_pipe: tuple[int, int] | None = None
        self._stopping = False
        _transports.add(self)

    def stop_waiting(self) -> None:
        """From now on ``drain_events`` returns at once with no message: the worker is stopping."""
        self._stopping = True
        self.wake()

    def wake(self) -> None:
        """End a wait in ``drain_events`` now (from any thread)."""
        if self._wake_pipe is None:
            return
        # Full of wake-ups already, or closed with the connection: either way, nothing to add.
        with contextlib.suppress(OSError):
            os.write(self._wake_pipe[1], b"\0")

    # kombu's base and virtual transports disagree on this signature (stubs and code alike); this is the virtual one.
    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """Deliver one message, or raise socket.timeout after ``timeout`` seconds (at once if stopping).

        1. Watch the queue folder (once per connection), before looking:
           whatever lands after the first look wakes the wait below.
        2. Look in every queue (kombu's fair cycle); deliver what is there.
        3. Nothing: wait until a message is renamed into the folder, a
           message is acknowledged, the poll interval passes, or the time is
           up; then look again.
        """
        started = monotonic()
        poll_every = float(self.polling_interval or 1.0)
        if self._watch is None:
            self._wake_pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._watch = INotify()
            # MOVED_TO: our rename; CLOSE_WRITE: a message written in place by stock kombu.
            self._watch.add_watch(self._folder, flags.MOVED_TO | flags.CLOSE_WRITE)
        while not self._stopping:
            try:
                self.cycle.get(self._deliver, timeout=timeout)  # type: ignore[union-attr]
                return
            except Empty:
                pass
            waited = monotonic() - started
            if timeout is not None and waited >= timeout:
                break
            self._sleep(poll_every if timeout is None else min(poll_every, timeout - waited))
        raise TimeoutError  # socket.timeout, which kombu's callers expect

    def _sleep(self, seconds: float) -> None:
        assert self._watch is not None and self._wake_pipe is not None
        wake_read = self._wake_pipe[0]
        ready, _, _ = select.select([self._watch, wake_read], [], [], seconds)
        if self._watch in ready:
            self._watch.read(timeout=0)
        if wake_read in ready:
            os.read(wake_read, 4096)

    def close_connection(self, connection: Any) -> None:
        super().close_connection(connection)
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._wake_pipe is not None:
            for fd in self._wake_pipe:
                os.close(fd)
            self._wake_pipe = None


# This process's transports, for the shutdown below.
_transports: weakref.WeakSet[Transport] = weakref.WeakSet()


@worker_shutting_down.connect
def _stop_waiting(**_: Any) -> None:
    """A worker told to stop (TERM, Ctrl-C) stops waiting for messages now.

    Celery sends this from its signal handler, in the worker's main process,
    where the consumer's loop waits in ``drain_events``; that loop then runs
    one more wait before it stops, which must end at once too.
    """
    for transport in list(_transports):
        transport.stop_waiting()
