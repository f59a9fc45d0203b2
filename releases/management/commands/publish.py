from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from releases.management.commands._base import ConsoleCommand, invalid, log_tail, wait_until
from releases.models import Deployment, Environment, Release
from releases.selectors.lookups import environment_by_name, release_by_version
from releases.services.deployments import deployment_request


class Command(ConsoleCommand):
    help = "Publish a release to an environment (upload, then verify)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("project")
        parser.add_argument("version")
        parser.add_argument("--to", required=True, dest="environment", help="The environment's name.")
        parser.add_argument("--wait", action="store_true", help="Wait for the end; exit 0 only on success.")

    def refused(self, release: Release, environment: Environment, exc: ValidationError) -> CommandError:
        """Each reason on a line of its own (PyPI's rules may find several), nothing sent."""
        if len(exc.messages) == 1:
            return invalid(exc)
        for message in exc.messages:
            self.stderr.write(f"  - {message}")
        return CommandError(
            f"{release} cannot go to {environment.name} ({len(exc.messages)} reasons above); nothing was sent."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            release = release_by_version(options["project"], options["version"])
            environment = environment_by_name(options["environment"])
        except ValidationError as exc:
            raise invalid(exc) from None
        try:
            deployment = deployment_request(release=release, environment=environment, actor=None)
        except ValidationError as exc:
            raise self.refused(release, environment, exc) from None
        self.stdout.write(f"deployment #{deployment.pk}: {release} to {environment.name}, {deployment.label.lower()}")
        if not options["wait"]:
            return
        if deployment.awaits_approval:
            self.stdout.write(f"waiting for {deployment.required_approvals} approval(s)")

        def finished() -> Deployment | None:
            current = Deployment.objects.get(pk=deployment.pk)
            return None if current.is_active else current

        current = wait_until(finished, timeout=options["wait_timeout"])
        for record in current.files.select_related("artifact"):
            self.stdout.write(f"  {record.artifact.filename}  sha256:{record.artifact.sha256}  {record.label}")
        if not current.succeeded:
            for line in log_tail(current.jobs.order_by("created_at").last()):
                self.stderr.write(f"  | {line}")
            raise CommandError(f"deployment #{current.pk} {current.outcome}: {current.reason}")
        self.stdout.write(f"deployment #{current.pk} succeeded: {release} is on {environment.name} and verified")
