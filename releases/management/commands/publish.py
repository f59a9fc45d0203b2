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
from releases.models import Deployment, Job, Release
from releases.selectors.lookups import environment_by_name, project_by_name, release_by_version
from releases.services.deployments import deployment_request
from releases.services.publishing import release_publish


class Command(ConsoleCommand):
    help = "Publish a release to an environment (upload, then verify); with --ref, create and build it first."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("project")
        parser.add_argument("version", help="Normalized PEP 440 version, e.g. 1.4.0")
        parser.add_argument("--to", required=True, dest="environment", help="The environment's name.")
        parser.add_argument(
            "--ref",
            help="A tag, branch or commit: create the release from it and build it, unless it exists "
            "(then it must come from this ref).",
        )
        parser.add_argument("--wait", action="store_true", help="Wait for the end; exit 0 only on success.")
        add_as_argument(parser, "releaser")

    def refused(self, exc: ValidationError, options: dict[str, Any]) -> CommandError:
        """Each reason on a line of its own (PyPI's rules may find several), nothing sent."""
        if len(exc.messages) == 1:
            return invalid(exc)
        for message in exc.messages:
            self.stderr.write(f"  - {message}")
        return CommandError(
            f"{options['project']} {options['version']} cannot go to {options['environment']} "
            f"({len(exc.messages)} reasons above); nothing was sent."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = acting_user(options)
        try:
            if options["ref"] is None:
                release = release_by_version(options["project"], options["version"])
                environment = environment_by_name(options["environment"])
                deployment = deployment_request(release=release, environment=environment, actor=actor)
            else:
                project = project_by_name(options["project"])
                environment = environment_by_name(options["environment"])
                publication = release_publish(
                    project=project,
                    version=options["version"],
                    ref=options["ref"],
                    environment=environment,
                    actor=actor,
                )
                release, deployment = publication.release, publication.deployment
                if publication.release_created:
                    self.stdout.write(f"release {release} created from {release.ref}; build queued")
        except ValidationError as exc:
            raise self.refused(exc, options) from None
        self.stdout.write(f"deployment #{deployment.pk}: {release} to {environment.name}, {deployment.label.lower()}")
        if not options["wait"]:
            return
        if deployment.awaits_approval:
            self.stdout.write(f"waiting for {deployment.required_approvals} approval(s)")

        def finished() -> Deployment | None:
            current = Deployment.objects.get(pk=deployment.pk)
            return None if current.is_active else current

        current = wait_until(finished, timeout=options["wait_timeout"])
        built = Release.objects.get(pk=release.pk)
        if options["ref"] is not None and built.is_built:
            self.stdout.write(f"built {built} at {built.commit[:12]}")
        for record in current.files.select_related("artifact"):
            self.stdout.write(f"  {record.artifact.filename}  sha256:{record.artifact.sha256}  {record.label}")
        if not current.succeeded:
            # A deployment whose build failed has no job of its own: the build's log says why.
            job = current.jobs.order_by("created_at").last() or built.jobs.filter(kind=Job.Kind.BUILD).last()
            for line in log_tail(job):
                self.stderr.write(f"  | {line}")
            raise CommandError(f"deployment #{current.pk} {current.outcome}: {current.reason}")
        self.stdout.write(f"deployment #{current.pk} succeeded: {release} is on {environment.name} and verified")
