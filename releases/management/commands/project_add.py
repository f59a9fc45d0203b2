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
        parser.add_argument(
            "--subdirectory", default="", help="Where the package is in the repository (a monorepo's folder)."
        )
        parser.add_argument(
            "--wheels-workflow",
            default="",
            help="A GitHub workflow (wheels.yml) whose run on the release's commit builds the wheels to collect.",
        )
        parser.add_argument(
            "--no-wheel-repair",
            action="store_true",
            help="Keep linux_ wheels as built (PyPI refuses them): for projects published to private indexes only.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            project = project_create(
                name=options["name"],
                source=options["source"],
                github_repository=options["github"],
                workflow_file=options["workflow"],
                tag_pattern=options["tag_pattern"],
                strict_checks=options["strict"],
                subdirectory=options["subdirectory"],
                wheels_workflow=options["wheels_workflow"],
                repair_wheels=not options["no_wheel_repair"],
                actor=None,
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        where = f"{project.source}, in {project.subdirectory}" if project.subdirectory else project.source
        self.stdout.write(f"project {project.name} added (source {where})")
