from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.urls import reverse

from releases.management.commands._base import ConsoleCommand, invalid
from releases.models import Project
from releases.selectors.lookups import project_by_name
from releases.services.projects import project_set_github


def _read_secret(path: str, what: str) -> str:
    if not path:
        return ""
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise CommandError(f"Cannot read the {what} file: {exc.strerror}.") from None
    if not value:
        raise CommandError(f"The {what} file is empty.")
    return value


class Command(ConsoleCommand):
    help = "Wire a project to its GitHub repository: token, webhook secret, workflow and publish mode (docs/github.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project")
        parser.add_argument("--repository", required=True, help="owner/name")
        parser.add_argument(
            "--api-url", default="https://api.github.com", help="GitHub Enterprise: https://HOST/api/v3"
        )
        parser.add_argument("--workflow", default="publish.yml", help="The workflow file under .github/workflows/.")
        parser.add_argument("--inputs", default="{}", help='Other workflow inputs, as JSON: {"python": "3.12"}')
        parser.add_argument("--mode", choices=Project.PublishMode.values, default=Project.PublishMode.TWINE)
        parser.add_argument("--token-file", default="", help="A file holding the GitHub token (never the token).")
        parser.add_argument("--webhook-secret-file", default="", help="A file holding the webhook secret.")
        parser.add_argument("--release-on-created", action="store_true", help="Also start on 'created' releases.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            inputs = json.loads(options["inputs"])
        except json.JSONDecodeError:
            raise CommandError("--inputs is not JSON.") from None
        if not isinstance(inputs, dict):
            raise CommandError("--inputs must be a JSON object.")
        try:
            project = project_set_github(
                project_by_name(options["project"]),
                repository=options["repository"],
                api_url=options["api_url"],
                workflow_file=options["workflow"],
                workflow_inputs=inputs,
                publish_mode=options["mode"],
                token=_read_secret(options["token_file"], "token"),
                webhook_secret=_read_secret(options["webhook_secret_file"], "webhook secret"),
                release_on_created=options["release_on_created"],
                actor=None,
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        self.stdout.write(
            f"{project.name}: {project.github_repository}, {project.workflow_file}, publishes by {project.publish_mode}; "
            f"webhook path {reverse('releases:github_webhook', args=[project.name])}"
        )
