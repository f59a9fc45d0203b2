from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from releases.management.commands._base import ConsoleCommand, invalid
from releases.services.roles import ROLES, role_assign, role_remove


class Command(ConsoleCommand):
    help = f"Give a person a role ({', '.join(ROLES)}), or take it away with --remove."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=ROLES)
        parser.add_argument("--remove", action="store_true", help="Take the role away instead.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(
                f"There is no user named {options['username']!r}; create it with createsuperuser or the admin."
            )
        try:
            if options["remove"]:
                role_remove(user, options["role"])
                self.stdout.write(f"{user.username} is no longer {options['role']}")
            else:
                role_assign(user, options["role"])
                self.stdout.write(f"{user.username} is now {options['role']}")
        except ValidationError as exc:
            raise invalid(exc) from None
