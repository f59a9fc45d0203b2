"""The process watchdog of a sandboxed command.

RLIMIT_NPROC keeps a fork bomb from filling the host's process table, but a
command whose every fork fails and that forks again would hold its limit
until the runner's timeout, tens of minutes later, and its job would fail
saying only that it took too long. The watchdog counts the tasks in the
sandbox's PID namespace (processes and threads: what the limit counts) a
few times a second, and stops a sandbox that stays at its limit, with a
reason a person can act on.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

INTERVAL = 0.2
# At the limit for this long: a build's short burst of compilers is not
# a fork bomb, a sandbox stuck there is.
SUSTAIN = 2.0
NEAR = 0.9
MOSTLY = 0.8
# The scheduler shares the CPU between sessions (autogroups), not processes:
# nice inside a session does not make a sandbox yield to the worker, the web
# server or another job. So each session of a sandbox is given this nice
# (its autogroup's), and the sandbox's last one while it sits at its process
# limit, until it is stopped.
SESSION_NICE = 10
AT_LIMIT_NICE = 19


class Watchdog:
    """Watches the sandbox started as process ``pid`` (the outer bwrap) and
    calls ``stop(reason)`` once, if it stays at ``limit`` tasks."""

    def __init__(self, pid: int, limit: int, stop: Callable[[str], object]) -> None:
        self.pid = pid
        self.limit = limit
        self.stop = stop
        self.reason: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sandbox-watchdog-{pid}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        namespace = self._namespace()
        if namespace is None:
            return
        threshold = max(1, int(self.limit * NEAR))
        # The last SUSTAIN seconds of samples: a sandbox near its limit in
        # most of them is stopped, though a few processes come and go.
        window: deque[bool] = deque(maxlen=int(SUSTAIN / INTERVAL))
        niced: dict[int, int] = {}
        while not self._done.wait(INTERVAL):
            pids, count = members(namespace)
            if count == 0:
                return
            window.append(count >= threshold)
            nice_sessions(pids, AT_LIMIT_NICE if count >= threshold else SESSION_NICE, niced)
            if len(window) == window.maxlen and sum(window) >= MOSTLY * window.maxlen:
                self.reason = (
                    f"it kept starting processes: {count} at its limit of {self.limit} for {SUSTAIN:.0f} s "
                    "(a fork bomb, or a build that needs a higher limit)"
                )
                self.stop(self.reason)
                return

    def _namespace(self) -> str | None:
        """The sandbox's PID namespace: that of bwrap's first child, once
        it has one (bwrap makes it within milliseconds)."""
        ours = os.readlink("/proc/self/ns/pid")
        deadline = time.monotonic() + 10
        while not self._done.is_set() and time.monotonic() < deadline:
            for child in children(self.pid):
                with contextlib.suppress(OSError):
                    namespace = os.readlink(f"/proc/{child}/ns/pid")
                    if namespace != ours:
                        return namespace
            if not Path(f"/proc/{self.pid}").exists():
                return None
            time.sleep(0.005)
        return None


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tasks_in(namespace: str) -> int:
    """The tasks (threads included) of every process in ``namespace``."""
    return members(namespace)[1]


def members(namespace: str) -> tuple[list[int], int]:
    """The processes in ``namespace``, and their tasks (threads included)."""
    pids = []
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/ns/pid") != namespace:
                continue
            stat = Path(f"/proc/{entry.name}/stat").read_bytes()
        except OSError:
            continue
        pids.append(int(entry.name))
        # num_threads is field 20: the 18th after the parenthesised name.
        count += int(stat.rsplit(b")", 1)[1].split()[17])
    return pids, count


def nice_sessions(pids: list[int], nice: int, done: dict[int, int]) -> None:
    """Give the autogroup (session) of each of ``pids`` the nice ``nice``,
    once per process and level (``done``); where the kernel has no
    autogroups, or the process is gone, nothing."""
    for pid in pids:
        if done.get(pid) == nice:
            continue
        done[pid] = nice
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def tasks_of(uid: int) -> int:
    """The tasks of every process of ``uid`` (what its RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count
