"""PyPI's upload rules, for one release and one environment
(``Environment.pypi_rules``), checked when a person asks for the push and
again right before the first byte leaves.

PyPI refuses files one at a time: without this, the sdist of a release can
be live before its wheel is refused, after the approval. The rules
themselves are ``steps.pypi_rules`` (pure functions over the files and what
the index says); this module gives them the release's stored files, what
the index holds, the account the token belongs to, and the console's own
record of the filenames it once uploaded there (a deleted file's name is
never taken again, and nothing public lists those).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from releases.clients import artifacts
from releases.errors import StepFailed, TransientError
from releases.models import Artifact, Deployment, DeploymentFile, Environment, Project, Release
from releases.steps.pypi_index_view import read_index
from releases.steps.pypi_rules import Violation, check_credential, check_paths
from releases.steps.workspace import Workspace


def previously_uploaded(project: Project, environment: Environment) -> set[str]:
    """The filenames the console uploaded of ``project`` to the index ``environment`` publishes to."""
    return set(
        DeploymentFile.objects.filter(
            deployment__project=project,
            deployment__environment__index_url=environment.index_url,
            outcome=DeploymentFile.Outcome.UPLOADED,
        ).values_list("artifact__filename", flat=True)
    )


def rule_violations(
    paths: list[Path], release: Release, environment: Environment, *, token: str | None = None
) -> list[Violation]:
    """Every rule the index would break for the files at ``paths``.

    ``token`` is the environment's credential, when the caller holds it
    (the upload job): PyPI takes only API tokens. The pages never decrypt it.
    A project that publishes through its workflow sends no token: Trusted
    Publishing's is the workflow's own.
    """
    project = release.project
    view = read_index(environment.index_url, project.name)
    found: list[Violation] = []
    credential = environment.credential
    if token is not None and credential is not None and project.publish_mode == Project.PublishMode.TWINE:
        found += check_credential(credential.username, token, site=view.site)
    found += check_paths(
        paths,
        view,
        account=environment.index_account or None,
        now=timezone.now(),
        previously_uploaded=previously_uploaded(project, environment),
    )
    return found


def release_rule_problems(release: Release, environment: Environment) -> list[str]:
    """At request time: one line for each rule the release's files would
    break on ``environment``; empty when it has no such rules or none is broken.

    The stored files are fetched (their digests checked) into a folder of
    their own, and the index asked; the answer is kept for
    INDEX_RULES_CACHE_SECONDS, since the release page asks on every refresh.
    An index that cannot be asked is one line too (not kept): the push is
    not offered until the rules can be checked.
    """
    if not environment.pypi_rules or not release.is_built:
        return []
    stored = list(release.artifacts.order_by("kind", "filename"))
    key = _cache_key(release, environment, stored)
    cached = cache.get(key)
    if isinstance(cached, list):
        return [str(line) for line in cached]
    try:
        with tempfile.TemporaryDirectory(prefix="index-rules-") as folder:
            paths = [
                artifacts.fetch(a.path, Path(folder) / a.filename, sha256=a.sha256, size=a.size).path for a in stored
            ]
            problems = [v.message for v in rule_violations(paths, release, environment)]
    except (StepFailed, TransientError) as exc:
        return [f"PyPI's upload rules could not be checked against {environment.title} ({exc}); try again shortly."]
    cache.set(key, problems, settings.INDEX_RULES_CACHE_SECONDS)
    return problems


def _cache_key(release: Release, environment: Environment, stored: list[Artifact]) -> str:
    facts = [
        environment.index_url,
        environment.index_account,
        release.project.publish_mode,
        *sorted(a.sha256 for a in stored),
        str(DeploymentFile.objects.filter(deployment__environment__index_url=environment.index_url).count()),
    ]
    digest = hashlib.sha256("\n".join(facts).encode()).hexdigest()[:32]
    return f"index-rules:{release.pk}:{environment.pk}:{digest}"


def index_rules_gate(ws: Workspace, deployment: Deployment, paths: list[Path], *, token: str | None) -> None:
    """Right before the first byte: the rules again, on the very files about
    to be sent (fetched into the job's folder, digests checked), with what
    the index says now. Any broken rule stops the job with every line, and
    nothing is sent."""
    environment = deployment.environment
    if not environment.pypi_rules:
        return
    ws.step(f"checking PyPI's upload rules for {len(paths)} files against {environment.index_url}")
    violations = rule_violations(paths, deployment.release, environment, token=token)
    for violation in violations:
        ws.log.write(
            f"PyPI would refuse: {violation.message} (PyPI answers {violation.pypi_status}: {violation.pypi_message})"
        )
    if violations:
        raise StepFailed(
            f"Nothing was sent: {environment.title} would refuse {len(violations)} thing"
            f"{'s' if len(violations) != 1 else ''}. " + " ".join(v.message for v in violations)
        )
    ws.log.write("PyPI's upload rules: nothing the index would refuse")
