from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandParser

from releases.management.commands._base import ConsoleCommand, invalid
from releases.services.projects import project_create


class Command(ConsoleCommand):
    help = "Add a project: a Python distribution and where its source is."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--source", required=True, help="A git URL or a local path to a git repository.")
        parser.add_argument("--github", default="", help="OWNER/REPO")
        parser.add_argument("--workflow", default="publish.yml")
        parser.add_argument("--tag-pattern", default="v*.*.*")
        parser.add_argument("--strict", action="store_true", help="twine check warnings fail the build.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_create(
                name=options["name"],
                source=options["source"],
                github_repository=options["github"],
                workflow_file=options["workflow"],
                tag_pattern=options["tag_pattern"],
                strict_checks=options["strict"],
                actor=None,
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        self.stdout.write(f"project {project.name} added (source {project.source})")
