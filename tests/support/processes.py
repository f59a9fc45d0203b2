"""Processes as /proc sees them: who descends from whom, in which session,
and how much CPU they used. Linux only, as the console's sandbox is."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    # Ticks since boot when it started: with the pid, names one process
    # even after the pid is reused.
    start: int
    cpu_ticks: int
    command: str

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start)


def process_info(pid: int) -> ProcessInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name sits in parentheses and may itself hold spaces or ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessInfo(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        state=fields[0],
        start=int(fields[19]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        command=command or stat[stat.index("(") + 1 : stat.rindex(")")],
    )


def all_processes() -> list[ProcessInfo]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = process_info(int(entry))
            if info is not None:
                found.append(info)
    return found


def descendants(pid: int) -> list[ProcessInfo]:
    """Every living process below ``pid`` in the parent tree."""
    processes = all_processes()
    children: dict[int, list[ProcessInfo]] = {}
    for info in processes:
        children.setdefault(info.ppid, []).append(info)
    found: list[ProcessInfo] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child.pid)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of ``pid`` and its living descendants."""
    tree = [info for info in (process_info(pid), *descendants(pid)) if info is not None]
    return sum(info.cpu_ticks for info in tree) / TICKS


def alive(info: ProcessInfo) -> bool:
    """Whether that very process (not a later one with its pid) still runs."""
    now = process_info(info.pid)
    return now is not None and now.start == info.start and now.state != "Z"
