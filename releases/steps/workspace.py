"""What a step works in: a private folder, a log to write to, and a way to
say what it is doing. The services make one for each job (backed by the
job's rows); a step sees only this."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from releases.errors import JobLost


def private_folder(workdir: Path) -> Path:
    return workdir.with_name(workdir.name + ".private")


class Log(Protocol):
    """Where a step's output goes, line by line."""

    # Set once the job is no longer this worker's: steps stop at once.
    lost: threading.Event
    # Set once the commands' output reached the job log's limit: the
    # command printing is stopped, and what it prints next is not kept.
    full: threading.Event

    def write(self, text: str) -> None: ...

    def write_lines(self, lines: list[str]) -> None: ...


@dataclass
class Workspace:
    job_id: int
    workdir: Path
    log: Log
    # Called with what the job is doing now (shown beside its elapsed time).
    on_step: Callable[[str], None] = field(default=lambda text: None)

    @property
    def private(self) -> Path:
        """A folder beside ``workdir`` that no sandbox ever sees: where the
        worker keeps what it takes out of the job's folder (build outputs)
        or fetches for it (the wheel to verify)."""
        return private_folder(self.workdir)

    def step(self, text: str) -> None:
        self.check_owned()
        self.log.write(f"==> {text}")
        self.on_step(text)

    def check_owned(self) -> None:
        if self.log.lost.is_set():
            raise JobLost(f"job {self.job_id} was given to another worker")
