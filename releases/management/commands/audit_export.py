from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from releases.models import AuditEvent
from releases.services.audit import canonical_json, event_payload


def export_lines() -> Iterator[str]:
    """One canonical JSON object per event: the hashed fields, previous_hash, hash and the seal."""
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        yield canonical_json(
            {
                **event_payload(event),
                "previous_hash": event.previous_hash,
                "hash": event.hash,
                "seal": event.seal,
                "seal_key_id": event.seal_key_id,
            }
        )


class Command(BaseCommand):
    help = "Write the audit chain as JSON Lines (docs/audit.md says how to verify it off the host)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", help="A file to write; standard output when omitted.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["output"]:
            for line in export_lines():
                self.stdout.write(line)
            return
        path = Path(options["output"])
        count = 0
        with path.open("w", encoding="utf-8") as handle:
            for line in export_lines():
                handle.write(line + "\n")
                count += 1
        self.stderr.write(f"wrote {count} events to {path}")
