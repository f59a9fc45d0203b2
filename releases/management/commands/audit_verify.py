from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from releases.models import AuditEvent
from releases.services.audit import audit_verify_chain


class Command(BaseCommand):
    help = "Walk the audit chain; exit non-zero naming the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        broken = audit_verify_chain()
        if broken is not None:
            raise CommandError(f"audit chain broken at event #{broken.event_id}: {broken.problem}")
        last = AuditEvent.objects.order_by("-id").first()
        if last is None:
            self.stdout.write("audit chain intact: no events yet")
            return
        count = AuditEvent.objects.count()
        self.stdout.write(f"audit chain intact: {count} events, last #{last.pk} with hash {last.hash}")
