from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.services.audit_checkpoints import checkpoint_folder
from releases.services.audit_verification import AuditReport, audit_verify_report


def _summary(report: AuditReport) -> list[str]:
    walk = report.walk
    if walk.count == 0:
        lines = ["audit chain intact: no events yet"]
    else:
        lines = [f"audit chain intact: {walk.count} events, last #{walk.last_id} with hash {walk.last_hash}"]
        lines += [f"  {count} sealed with key {key_id}" for key_id, count in walk.sealed_by.items()]
    if report.checkpoints:
        newest = max(report.checkpoints, key=lambda c: c.event_id)
        matched = report.checkpoints_matched
        lines.append(
            f"checked against {matched} signed checkpoint{'' if matched == 1 else 's'}; the newest names "
            f"#{newest.event_id}, signed {newest.created_at}"
        )
    else:
        folder = checkpoint_folder()
        read = ", ".join(str(path) for path in report.files) or (
            f"none yet in {folder}" if folder else "AUDIT_CHECKPOINT_DIR is empty and no --checkpoints given"
        )
        lines.append(
            f"no signed checkpoint to check against ({read}): events deleted from the end of the chain would not show"
        )
    return lines


class Command(BaseCommand):
    help = (
        "Verify the audit chain (links, keyed seals, head) against every signed checkpoint it can read; "
        "exit non-zero naming the first broken link."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--checkpoints",
            action="append",
            type=Path,
            default=[],
            metavar="PATH",
            help="A file of checkpoint lines, or a folder of them (copies kept from mail or a witness); repeatable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        missing = [str(path) for path in options["checkpoints"] if not path.exists()]
        if missing:
            raise CommandError(f"no such checkpoint file or folder: {', '.join(missing)}")
        report = audit_verify_report(options["checkpoints"])
        lines = []
        if report.broken is not None:
            lines.append(f"audit chain broken at event #{report.broken.event_id}: {report.broken.problem}")
        else:
            self.stdout.write("\n".join(_summary(report)))
        lines += report.problems
        if lines:
            raise CommandError("\n".join(lines))
