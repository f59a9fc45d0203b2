from __future__ import annotations

from argparse import BooleanOptionalAction
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from releases.management.commands._base import ConsoleCommand, invalid
from releases.services.projects import environment_create


class Command(ConsoleCommand):
    help = "Add an environment: a package index to publish to, with its rules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--title", default="", help="Shown on buttons; defaults to the name.")
        parser.add_argument("--upload-url", required=True)
        parser.add_argument("--index-url", required=True, help="The simple-index URL.")
        parser.add_argument("--fallback-index-url", default="", help="Where dependencies come from during verify.")
        parser.add_argument("--username", default="__token__")
        parser.add_argument("--token-file", default="", help="A file holding the token (never the token itself).")
        parser.add_argument("--approvals", type=int, default=0)
        parser.add_argument("--after", default="", help="An environment that must have succeeded first.")
        parser.add_argument(
            "--pypi-rules",
            action=BooleanOptionalAction,
            default=None,
            help="Check PyPI's upload rules before anything is sent (default: on for pypi.org and test.pypi.org).",
        )
        parser.add_argument(
            "--index-account", default="", help="The index account the token belongs to, for the project-owner rule."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rules = {} if options["pypi_rules"] is None else {"pypi_rules": options["pypi_rules"]}
        token = ""
        if options["token_file"]:
            try:
                token = Path(options["token_file"]).read_text().strip()
            except OSError as exc:
                raise CommandError(f"Cannot read the token file: {exc.strerror}.") from None
            if not token:
                raise CommandError("The token file is empty.")
        try:
            environment = environment_create(
                name=options["name"],
                title=options["title"],
                upload_url=options["upload_url"],
                index_url=options["index_url"],
                fallback_index_url=options["fallback_index_url"],
                username=options["username"],
                token=token,
                required_approvals=options["approvals"],
                after=options["after"],
                index_account=options["index_account"],
                actor=None,
                **rules,
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        rules_said = ", PyPI's upload rules checked" if environment.pypi_rules else ""
        self.stdout.write(f"environment {environment.name} added ({environment.index_url}{rules_said})")
