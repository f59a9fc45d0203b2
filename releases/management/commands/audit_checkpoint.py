from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.services.audit_checkpoints import public_key_text, signing_key
from releases.services.audit_witnesses import AuditChainBroken, audit_checkpoint_write


class Command(BaseCommand):
    help = "Verify the audit chain and write a signed checkpoint of its head now, to every configured place."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="Print the public key that verifies checkpoints (give it to whoever checks them), and stop.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["public_key"]:
            self.stdout.write(public_key_text(signing_key().public_key()))
            return
        try:
            outcome = audit_checkpoint_write(force=True)
        except AuditChainBroken as exc:
            raise CommandError(f"no checkpoint signed: {exc}") from None
        checkpoint = outcome.checkpoint
        if checkpoint is None:
            self.stdout.write(f"no checkpoint written: {outcome.skipped}")
            return
        self.stdout.write(
            f"checkpoint of event #{checkpoint.event_id} ({checkpoint.count} events, hash {checkpoint.hash}) "
            f"signed by key {checkpoint.key}"
        )
        for place in outcome.delivered:
            self.stdout.write(f"  written to {place}")
        if not outcome.delivered and not outcome.failed:
            raise CommandError(
                "nowhere to write it: set AUDIT_CHECKPOINT_DIR, AUDIT_CHECKPOINT_EMAILS or AUDIT_CHECKPOINT_WITNESS_URL"
            )
        if outcome.failed:
            raise CommandError("\n".join(f"not written to {failure}" for failure in outcome.failed))
