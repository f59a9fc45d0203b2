"""What the headless commands share: one-line errors, acting as a named
person (``--as``), and waiting on rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.actors import is_service_account
from releases.models import Job


class ConsoleCommand(BaseCommand):
    """A command whose bad input ends in one line and a non-zero exit."""

    # The system checks run at deploy time (manage.py check --deploy) and in
    # the web server; a headless release command starts without them.
    requires_system_checks: list[str] = []

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except ValidationError as exc:
            self.stderr.write(f"CommandError: {' '.join(exc.messages)}")
            raise SystemExit(2) from None

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--wait-timeout", type=float, default=1800.0, help="Seconds --wait waits at most.")


def add_as_argument(parser: CommandParser, role: str) -> None:
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USERNAME",
        help=f"Act as this person, who must hold the {role} role; recorded as who asked. "
        "Needed wherever an approval is; without it the console itself acts, where no approval is needed.",
    )


def acting_user(options: dict[str, Any]) -> User | None:
    """The person named by ``--as`` (their roles are checked by the service), or None."""
    username = options.get("as_user")
    if not username:
        return None
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"There is no active user named {username!r} to act as.")
    if is_service_account(user):
        # Else one person could ask as "the webhook" and approve as themselves.
        raise CommandError(f"{username} is the service account webhooks act as; act as a person.")
    return user


def invalid(exc: ValidationError) -> CommandError:
    return CommandError(" ".join(exc.messages))


def wait_until(done: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``done`` until it returns something truthy, or raise CommandError."""
    deadline = time.monotonic() + timeout
    while True:
        result = done()
        if result:
            return result
        if time.monotonic() > deadline:
            raise CommandError(f"Still not finished after {timeout:.0f} s; it goes on in the background.")
        time.sleep(interval)


def log_tail(job: Job | None, lines: int = 15) -> list[str]:
    """The last lines of a job's log, oldest first, for a failure message."""
    if job is None:
        return []
    return list(reversed(job.lines.order_by("-number").values_list("text", flat=True)[:lines]))
