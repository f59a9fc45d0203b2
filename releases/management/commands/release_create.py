from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from releases.management.commands._base import (
    ConsoleCommand,
    acting_user,
    add_as_argument,
    invalid,
    log_tail,
    wait_until,
)
from releases.models import Release
from releases.selectors.lookups import project_by_name
from releases.services.releases import release_create


class Command(ConsoleCommand):
    help = "Create a release of a project from a git ref, and build it."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("project")
        parser.add_argument("version", help="Normalized PEP 440 version, e.g. 1.4.0")
        parser.add_argument("--ref", required=True, help="A tag, branch or commit.")
        parser.add_argument("--wait", action="store_true", help="Wait for the build; exit 0 only if it succeeded.")
        add_as_argument(parser, "releaser")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = acting_user(options)
        try:
            project = project_by_name(options["project"])
            release = release_create(project=project, version=options["version"], ref=options["ref"], actor=actor)
        except ValidationError as exc:
            raise invalid(exc) from None
        self.stdout.write(f"release {release} created from {release.ref}; build queued")
        if not options["wait"]:
            return

        def finished() -> Release | None:
            current = Release.objects.get(pk=release.pk)
            return None if current.is_building else current

        current = wait_until(finished, timeout=options["wait_timeout"])
        if current.build_failed:
            for line in log_tail(current.jobs.filter(kind="build").last()):
                self.stderr.write(f"  | {line}")
            raise CommandError(f"build failed: {current.reason}")
        for artifact in current.artifacts.all():
            self.stdout.write(f"  {artifact.filename}  {artifact.size} bytes  sha256:{artifact.sha256}")
        self.stdout.write(f"built {current} at {current.commit[:12]}")
