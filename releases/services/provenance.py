"""After a push to an environment with PyPI's rules: each file's provenance
(PEP 740), verified and recorded on the deployment's files, as a
post-publication check. A file signed by another repository or at another
commit than the release's fails it; so does a file without provenance when
the project publishes through Trusted Publishing, which attests every file."""

from __future__ import annotations

from dataclasses import asdict

from django.conf import settings

from releases.errors import StepFailed, TransientError
from releases.models import Deployment, DeploymentFile
from releases.steps.checks import PROVENANCE, Checks, Outcome
from releases.steps.provenance import ExpectedPublisher, FileProvenance, read_provenance
from releases.steps.workspace import Workspace


def provenance_check(ws: Workspace, deployment: Deployment, checks: Checks) -> list[str]:
    """Read, verify and record the provenance of every file of ``deployment``;
    the failed check as "name: reason" (empty when it passed or does not apply)."""
    environment = deployment.environment
    if not environment.pypi_rules:
        return []
    release = deployment.release
    project = release.project
    through_workflow = project.publishes_through_workflow
    expected = ExpectedPublisher(
        repository=project.github_repository,
        commit=release.commit,
        workflow=project.workflow_file if through_workflow else "",
        required=through_workflow,
    )
    records = {r.artifact.filename: r for r in deployment.files.select_related("artifact")}
    results: list[FileProvenance] = []

    def check() -> Outcome:
        try:
            results.extend(
                read_provenance(
                    ws,
                    index_url=environment.index_url,
                    project=project.name,
                    version=release.version,
                    files=[(name, r.artifact.sha256) for name, r in sorted(records.items())],
                    expected=expected,
                    offline=settings.SIGSTORE_OFFLINE,
                )
            )
        except (StepFailed, TransientError) as exc:
            return Outcome(False, f"The provenance could not be read: {exc}")
        failed = [r for r in results if not r.passed]
        if failed:
            return Outcome(False, " ".join(f"{r.filename}: {r.detail}." for r in failed))
        signed = [r for r in results if r.signed]
        if not signed:
            return Outcome(True, f"none of the {len(results)} files is signed (published with an API token)")
        return Outcome(True, f"{len(signed)} of {len(results)} files signed: {signed[0].detail}")

    outcome = checks.timed(PROVENANCE, check)
    for result in results:
        record = records[result.filename]
        kept = {k: v for k, v in asdict(result).items() if k != "filename"}
        DeploymentFile.objects.filter(pk=record.pk).update(provenance=kept)
    if outcome is None or outcome.passed:
        return []
    ws.log.write(f"check {PROVENANCE}: FAILED: {outcome.detail}")
    return [f"{PROVENANCE}: {outcome.detail}"]
