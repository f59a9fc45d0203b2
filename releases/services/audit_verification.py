"""The whole audit check: the chain's links and seals, every checkpoint that
can be read, and the database guard that keeps the table append-only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection

from releases.services.audit import BrokenLink, ChainWalk, audit_walk
from releases.services.audit_checkpoints import (
    Checkpoint,
    CheckpointMatcher,
    checkpoint_files,
    checkpoints_read,
)

# The triggers migration 0012_audit_append_only installs, by database and table.
APPEND_ONLY_TRIGGERS: dict[str, dict[str, tuple[str, ...]]] = {
    "postgresql": {
        "releases_auditevent": ("releases_auditevent_append_only", "releases_auditevent_no_truncate"),
        "releases_auditchainhead": ("releases_auditchainhead_forward_only", "releases_auditchainhead_no_truncate"),
    },
    "sqlite": {
        "releases_auditevent": ("releases_auditevent_no_update", "releases_auditevent_no_delete"),
        "releases_auditchainhead": ("releases_auditchainhead_forward_only", "releases_auditchainhead_no_delete"),
    },
}


def _installed_triggers(table: str) -> set[str]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A disabled trigger ('D') guards nothing.
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal AND tgenabled <> 'D'",
                [table],
            )
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [table])
        return {row[0] for row in cursor.fetchall()}


def guard_problems() -> list[str]:
    """A line for each append-only trigger that is missing or switched off."""
    problems = []
    for table, names in APPEND_ONLY_TRIGGERS.get(connection.vendor, {}).items():
        installed = _installed_triggers(table)
        problems += [
            f"audit guard missing: trigger {name} on {table} was dropped or disabled "
            "(only the table's owner or a superuser can do that; see docs/audit.md)"
            for name in names
            if name not in installed
        ]
    return problems


@dataclass(frozen=True)
class AuditReport:
    walk: ChainWalk
    # The first broken link, in the chain itself or against a checkpoint.
    broken: BrokenLink | None
    checkpoints: list[Checkpoint]
    checkpoints_matched: int
    files: list[Path]
    # Forged or unreadable checkpoints, a missing guard: each a line to read.
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.problems


def _first(*links: BrokenLink | None) -> BrokenLink | None:
    found = [link for link in links if link is not None]
    return min(found, key=lambda link: link.event_id or 0) if found else None


def audit_verify_report(extra_checkpoints: Sequence[Path] = ()) -> AuditReport:
    """Check the chain against its keys, its head and every readable checkpoint.

    1. Read the checkpoints: those in ``AUDIT_CHECKPOINT_DIR`` and the files
       given (copies kept from mail or a witness). A checkpoint whose
       signature fails is reported, and not believed.
    2. Walk the chain in id order: each link, each seal, and each trusted
       checkpoint as the walk reaches the event it names.
    3. If the walk got to the end, checkpoints naming events past it mean
       events were deleted; the earliest problem is the first broken link.
    4. Check that the database's append-only triggers are in place.
    """
    files = checkpoint_files(extra_checkpoints)
    read = checkpoints_read(files)
    matcher = CheckpointMatcher(read.trusted)
    walk = audit_walk(check=matcher)
    beyond = matcher.after(walk) if walk.completed else None
    return AuditReport(
        walk=walk,
        broken=_first(walk.broken, beyond),
        checkpoints=read.trusted,
        checkpoints_matched=matcher.matched,
        files=files,
        problems=read.problems + guard_problems(),
    )
