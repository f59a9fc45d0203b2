from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.services.second_factor import second_factor_reset


class Command(BaseCommand):
    help = "Remove a person's one-time-password devices (a lost phone), so that they enrol again. Audited."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"There is no user named {options['username']!r}.")
        removed = second_factor_reset(user, actor=None, reason=options["reason"] or "reset with otp_reset")
        self.stdout.write(f"removed {removed} device(s) of {user.get_username()}; they can enrol again")
