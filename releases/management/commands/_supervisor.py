"""The processes ``run_embedded`` starts, and how it stops every one of them.

Each child runs in a session (and process group) of its own, so that the
terminal's Ctrl-C reaches ``run_embedded`` alone and the stop is ours to
order. TERM goes to each child's leader, which stops its own workers:
Celery's pool processes, signalled directly, can die holding the pool's
queue lock, and the worker then hangs at exit for good. KILL, when the grace
is over, goes to the whole group, since gunicorn's and Celery's workers
outlive a parent killed on its own (which is how a web worker once kept
port 8000 after Ctrl-C). A worker's job runs its tools in sessions of their
own (releases/steps/runner.py); the supervisor adopts whatever is
orphaned below it (a child subreaper, Linux), so those are found and
killed too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# prctl(2): orphans below this process are re-parented to it, not to init.
PR_SET_CHILD_SUBREAPER = 36
# TERM, then this long for the children to finish what they do (the web
# server its requests, the worker a short task), then KILL. An idle Celery
# worker on the filesystem transport takes about 6 s to stop: its loop looks
# for a shutdown every 2 s, then the pool's and timer's threads wind down.
STOP_GRACE = 7.0
# After KILL: how long to wait for every process to be gone. The two add up
# to the 10 s within which Ctrl-C frees the console's ports.
STOP_AFTER_KILL = 2.5


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def group(self) -> int:
        return self.process.pid  # a session leader leads its process group

    def group_alive(self) -> bool:
        """Whether any process of the group is left (the leader or its workers)."""
        try:
            os.killpg(self.group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # pragma: no cover - a reused id: not ours
            return False
        return True


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self._hurry = False
        _become_subreaper()

    def start(self, name: str, argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(list(argv), start_new_session=True, **popen)
        self.children.append(Child(name, process))
        return process

    def wait_for_any(self, interval: float = 0.5) -> Child:
        """Block until a child ends, and return it."""
        while True:
            for child in self.children:
                if child.process.poll() is not None:
                    return child
            self._reap_adopted()
            time.sleep(interval)

    def stop(self) -> list[str]:
        """Stop every process started below this one, within STOP_GRACE + STOP_AFTER_KILL seconds.

        1. TERM every child (its leader, which stops its own workers).
        2. Wait up to STOP_GRACE for the groups to empty (a second Ctrl-C
           or TERM cuts this short).
        3. KILL the groups left, whole, then every process still below this
           one, group by group: a job's tools, orphaned when the worker died.
        4. Wait up to STOP_AFTER_KILL for all of them to be gone (their
           ports are free then), reaping as they go.

        Returns the names of the children that had to be killed.
        """
        previous = {sig: signal.signal(sig, self._on_second_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for child in self.children:
                if child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while not self._hurry and time.monotonic() < deadline and self._anything_left():
                time.sleep(0.05)
            killed = [child.name for child in self.children if child.group_alive()]
            self._signal_groups(signal.SIGKILL)
            deadline = time.monotonic() + STOP_AFTER_KILL
            while time.monotonic() < deadline and self._anything_left():
                self._kill_descendants()
                time.sleep(0.05)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return killed

    def _on_second_signal(self, signum: int, frame: object) -> None:
        self._hurry = True

    def _signal_groups(self, sig: signal.Signals) -> None:
        for child in self.children:
            if child.group_alive():
                _killpg(child.group, sig)

    def _kill_descendants(self) -> None:
        own_group = os.getpgrp()
        for pid, pgid in descendants(os.getpid()):
            if pgid == own_group:
                # Started without a session of its own: its group is ours
                # (and the terminal's), so it goes alone.
                _kill(pid, signal.SIGKILL)
            else:
                _killpg(pgid, signal.SIGKILL)

    def _anything_left(self) -> bool:
        for child in self.children:
            child.process.poll()
        self._reap_adopted()
        return any(child.group_alive() for child in self.children) or bool(descendants(os.getpid()))

    def _reap_adopted(self) -> None:
        """Collect the exit of orphans adopted by this process; our own children's, Popen collects."""
        ours = {child.process.pid: child.process for child in self.children}
        while True:
            try:
                # WNOWAIT: look without collecting, so that Popen keeps its child's exit code.
                ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return  # no child at all
            if ended is None:
                return
            if ended.si_pid in ours:
                ours.pop(ended.si_pid).poll()
            else:
                with contextlib.suppress(ChildProcessError):  # collected meanwhile
                    os.waitpid(ended.si_pid, os.WNOHANG)


def descendants(root: int) -> list[tuple[int, int]]:
    """(pid, process group) of the living processes below ``root``, from /proc.

    Zombies (ended, not yet collected) are left out: they hold no port and
    run nothing.
    """
    table: dict[int, list[tuple[int, int, str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The fields after the command name, which sits in parentheses and may hold anything.
        state, ppid, pgid = stat[stat.rindex(")") + 2 :].split()[:3]
        table.setdefault(int(ppid), []).append((int(entry), int(pgid), state))
    found: list[tuple[int, int]] = []
    parents = [root]
    while parents:
        below = [row for parent in parents for row in table.get(parent, [])]
        found.extend((pid, pgid) for pid, pgid, state in below if state != "Z")
        parents = [pid for pid, _, _ in below]
    return found


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        os.killpg(pgid, sig)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone already
        os.kill(pid, sig)


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux: orphans go to init
        pass
