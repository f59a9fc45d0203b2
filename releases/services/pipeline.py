"""Running a job, and what each job's end sets in motion.

A job is claimed, its kind's work runs in a workspace (the steps do the
work and return results; this module stores them), and the job is
finished in the same transaction that records its result. What a success
starts next is ``SUCCESSORS``; any failure ends the release's build, the
deployment or the webhook delivery with the job's reason.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from releases.clients import artifacts
from releases.clients.http import RetryPolicy
from releases.errors import JobLost, StepFailed, TransientError
from releases.models import Artifact, Credential, Deployment, DeploymentFile, Environment, Job, Release, Sbom
from releases.redaction import redact
from releases.selectors.supply import scan_policy_problem
from releases.services.approvals import approvals_problem
from releases.services.credentials import credential_reveal
from releases.services.deployments import deployment_fail, deployment_succeed
from releases.services.destinations import destination_problem, token_matches
from releases.services.index_rules import index_rules_gate
from releases.services.job_log import workspace_close, workspace_open
from releases.services.jobs import job_claim, job_create, job_finish, job_runs_here
from releases.services.lifecycle import transition
from releases.services.provenance import provenance_check
from releases.services.release_files import ci_wheels_files, release_files
from releases.services.releases import (
    release_record_build,
    release_record_build_failure,
    release_record_sdist,
    release_start_build,
    release_store_files,
)
from releases.services.scans import release_scan
from releases.services.supply import check_record, sbom_record
from releases.services.webhooks import webhook_fail, webhook_process
from releases.services.workflow import dispatch_deployment, track_deployment
from releases.steps import checks as check_steps
from releases.steps.build import BuildRequest, build_release
from releases.steps.checks import Checks
from releases.steps.sbom import make_sbom
from releases.steps.upload import UploadFile, UploadResult, UploadTarget, upload_files
from releases.steps.verify import ExpectedFile, VerifyOutput, VerifyRequest, verify_release
from releases.steps.workspace import Workspace

logger = logging.getLogger(__name__)
State = Deployment.State
Kind = Job.Kind

# A kind's work: it runs the steps and returns what must be written in the
# transaction that finishes the job (or None).
Work = Callable[[Workspace, Job], Callable[[], None] | None]

# What a job's success sets in motion: where its deployment moves, and the
# job that follows. A build's success starts the deployments that waited for
# it (``release_record_build``); a verify's ends its deployment as succeeded.
SUCCESSORS: dict[str, tuple[str | None, str | None]] = {
    Kind.UPLOAD: (State.VERIFYING, Kind.VERIFY),
    Kind.DISPATCH: (None, Kind.TRACK),
    Kind.TRACK: (State.VERIFYING, Kind.VERIFY),
    Kind.VERIFY: (State.FINISHED, None),
}


def job_run(job_id: int, *, task_id: str = "") -> None:
    """Claim job ``job_id`` and run it; return quietly if someone else has it.

    A job of a kind this worker's role does not run (its message reached the
    wrong queue) is left queued: the reaper sends it again, to its own."""
    kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first()
    if kind is not None and not job_runs_here(kind):
        logger.error(
            "job %s is a %s job, which a %s worker does not run; left queued", job_id, kind, settings.WORKER_ROLE
        )
        return
    claim = job_claim(job_id, task_id=task_id, worker=f"{settings.WORKER_ROLE}@{socket.gethostname()}")
    if claim is None:
        return
    job = Job.objects.select_related("release__project", "deployment__environment", "delivery").get(pk=job_id)
    ws = workspace_open(job, claim)
    error = ""
    record: Callable[[], None] | None = None
    try:
        if job.attempts > 1:
            ws.log.write(f"==> attempt {job.attempts}: the previous attempt's worker stopped answering")
        record = WORK[job.kind](ws, job)
    except JobLost:
        logger.warning("job %s attempt %s: another worker owns it now; stopping", job_id, claim.attempt)
        workspace_close(ws)
        return
    except (OperationalError, InterfaceError):
        # The database went away mid-job (a restart, a failover): not the
        # job's fault, so not a failure. The job stays running, its
        # heartbeat goes stale, and the reaper queues it again while
        # attempts remain.
        logger.warning("job %s attempt %s: lost the database; left for the reaper", job_id, claim.attempt)
        workspace_close(ws)
        return
    except (StepFailed, TransientError) as exc:
        error = str(exc)
    except Exception as exc:  # a bug: fail the job with a reason rather than leave it running
        logger.exception("job %s failed unexpectedly", job_id)
        error = f"Internal error ({type(exc).__name__}): {exc}"
        ws.log.write(redact(traceback.format_exc()))
    ws.log.write(f"==> failed: {error}" if error else "==> done")
    workspace_close(ws)
    with transaction.atomic():
        outcome = Job.Outcome.FAILED if error else Job.Outcome.SUCCEEDED
        finished = job_finish(claim, outcome=outcome, reason=error)
        if finished is None:
            return
        if error:
            job_failed(finished, redact(error))
            return
        if record is not None:
            record()
        job_succeeded(finished)


def job_succeeded(job: Job) -> None:
    """Move the deployment on, and queue the job that follows (``SUCCESSORS``)."""
    deployment = job.deployment
    if deployment is None or job.kind not in SUCCESSORS:
        return
    moves_to, next_kind = SUCCESSORS[job.kind]
    if moves_to == State.FINISHED:
        deployment_succeed(deployment)
    elif moves_to is not None:
        transition(deployment, moves_to)
    if next_kind is not None:
        job_create(kind=next_kind, release=job.release, deployment=deployment)


def job_failed(job: Job, reason: str) -> None:
    """End what the job worked for with its reason."""
    if job.kind in (Kind.BUILD, Kind.COLLECT) and job.release is not None:
        release_record_build_failure(job.release, reason)
    elif job.kind == Kind.WEBHOOK and job.delivery is not None:
        webhook_fail(job.delivery, reason)
    elif job.deployment is not None:
        deployment_fail(job.deployment, f"{job.get_kind_display()} failed: {reason}")


# -- the work of each kind -------------------------------------------------------


def _release(job: Job) -> Release:
    if job.release is None:
        raise StepFailed(f"{job} has no release.")
    return job.release


def _deployment(job: Job) -> Deployment:
    if job.deployment is None:
        raise StepFailed(f"{job} has no deployment.")
    return job.deployment


def build_work(ws: Workspace, job: Job) -> Callable[[], None] | None:
    release = _release(job)
    if release.is_built:
        ws.log.write("already built; a release is built once")
        return None
    release_start_build(release)
    project = release.project
    built = build_release(
        ws,
        BuildRequest(
            project=project.name,
            version=release.version,
            source=project.source,
            ref=release.ref,
            strict=project.strict_checks,
            subdirectory=project.subdirectory,
        ),
    )
    for warning in built.warnings:
        ws.log.write(f"twine check warning: {warning}")
    files, origins = release_files(ws, release, built)
    ws.step("storing artifacts")
    artifacts = release_store_files(release, files, origins=origins)
    record = release_record_sdist if project.wheels_workflow else release_record_build
    return lambda: record(release, commit=built.commit, artifacts=artifacts, warnings=built.warnings)


def collect_work(ws: Workspace, job: Job) -> Callable[[], None] | None:
    """The wheels of a release whose wheels come from CI (after its build)."""
    release = _release(job)
    if release.is_built:
        ws.log.write("already built; a release is built once")
        return None
    files, origins = ci_wheels_files(ws, release)
    ws.step("storing artifacts")
    artifacts = release_store_files(release, files, origins=origins)
    return lambda: release_record_build(release, commit=release.commit, artifacts=artifacts, warnings=release.warnings)


def upload_work(ws: Workspace, job: Job) -> None:
    deployment = _deployment(job)
    _gate(deployment, "uploaded")
    records = {r.artifact.filename: r for r in deployment.files.select_related("artifact")}
    ordered = sorted(records.values(), key=lambda r: (r.artifact.kind, r.artifact.filename))  # sdist first
    target = _approved_target(deployment)
    fetched = _index_rules_gate(ws, deployment, [r.artifact for r in ordered], token=target.password)
    files = [UploadFile(r.artifact.filename, r.artifact.sha256) for r in ordered]
    result = upload_files(
        ws, target, files, lambda file: fetched.get(file.filename) or _fetch(ws, records[file.filename].artifact)
    )
    _record_upload(records, result)
    if result.error:
        raise StepFailed(result.error)


def _approved_target(deployment: Deployment) -> UploadTarget:
    """Where the files go: the addresses and the credential the request
    recorded and the approvals were given for (``_gate`` has just checked
    that the environment still says the same), with a token whose
    fingerprint is the recorded one, else nothing is sent."""
    destination = deployment.destination
    credential = Credential.objects.filter(pk=destination.get("credential_id")).first()
    if credential is None:
        raise StepFailed("Nothing was sent: the credential this push was approved with no longer exists.")
    password = credential_reveal(credential)
    if not token_matches(deployment, credential.username, password):
        raise StepFailed(
            f"Nothing was sent: the token of {credential.name!r} is not the one this push was asked for and "
            "approved with (its fingerprint differs); ask for the push again."
        )
    return UploadTarget(
        project=deployment.release.project.name,
        upload_url=str(destination["upload_url"]),
        index_url=str(destination["index_url"]),
        username=credential.username,
        password=password,
    )


def _fetch(ws: Workspace, artifact: Artifact) -> Path:
    """A stored file, copied into the job's folder once its bytes are shown
    to be the ones recorded (a tampered object is refused, nothing sent)."""
    local = ws.workdir / "upload" / artifact.filename
    local.parent.mkdir(exist_ok=True)
    return artifacts.fetch(artifact.path, local, sha256=artifact.sha256, size=artifact.size).path


def _index_rules_gate(
    ws: Workspace, deployment: Deployment, stored: list[Artifact], *, token: str | None
) -> dict[str, Path]:
    """PyPI's upload rules, on the files fetched into the job's folder, before
    the first byte (an environment without them: nothing fetched here)."""
    if not deployment.environment.pypi_rules:
        return {}
    fetched = {artifact.filename: _fetch(ws, artifact) for artifact in stored}
    index_rules_gate(ws, deployment, list(fetched.values()), token=token)
    return fetched


def _record_upload(records: dict[str, DeploymentFile], result: UploadResult) -> None:
    """Each file's outcome, on its own row, whatever became of the rest."""
    for outcome in result.files:
        record = records[outcome.filename]
        if record.state != DeploymentFile.State.PENDING:
            continue  # an earlier attempt recorded it
        stopped = outcome.outcome in (DeploymentFile.Outcome.CONFLICT, DeploymentFile.Outcome.FAILED)
        transition(
            record,
            DeploymentFile.State.STOPPED if stopped else DeploymentFile.State.ON_INDEX,
            outcome=outcome.outcome,
            reason=outcome.reason,
            changes={"index_sha256": outcome.index_sha256, "url": outcome.url[:500]},
        )


def dispatch_work(ws: Workspace, job: Job) -> None:
    deployment = _deployment(job)
    _gate(deployment, "dispatched")
    _index_rules_gate(ws, deployment, [r.artifact for r in deployment.files.select_related("artifact")], token=None)
    dispatch_deployment(ws, deployment)


def track_work(ws: Workspace, job: Job) -> None:
    track_deployment(ws, _deployment(job))


def _gate(deployment: Deployment, what: str) -> None:
    """Move to UPLOADING, then check the four-eyes rules, the destination
    the approvals were given for (the environment read again, now), and the
    scan policy, right before the first byte leaves (or the workflow starts)."""
    deployment.refresh_from_db()
    deployment.environment = Environment.objects.select_related("credential").get(pk=deployment.environment_id)
    if deployment.state == State.QUEUED:
        transition(deployment, State.UPLOADING)
    elif deployment.state != State.UPLOADING:  # a second run after a lost worker keeps UPLOADING
        raise StepFailed(f"The deployment is {deployment.label.lower()}; nothing was {what}.")
    problem = (
        destination_problem(deployment)
        or approvals_problem(deployment)
        or scan_policy_problem(deployment.release, deployment.environment)
    )
    if problem:
        raise StepFailed(f"Not {what}: {problem}")


def verify_work(ws: Workspace, job: Job) -> None:
    """Install from the index and check what arrived, then:

    1. The release's SBOM, made once from the verify environment before its
       folder goes, then its vulnerability scan. ``cyclonedx-py`` starts as
       soon as the install ends and runs beside the import and the checks
       (it only reads the environment, and touches no database). An
       unreachable vulnerability service does not fail the deployment (the
       files are published): the SBOM keeps the reason and the beat's
       ``scan_pending`` retries it as a scan job.
    2. The checks the install does not cover; any failed check fails the
       job, naming each, once the SBOM is stored.

    A failed install or import stores no SBOM. Every check that ran is
    stored, whatever happened after it.
    """
    deployment = _deployment(job)
    release = deployment.release
    environment = deployment.environment
    request = VerifyRequest(
        project=release.project.name,
        version=release.version,
        index_url=environment.index_url,
        fallback_index_url=environment.fallback_index_url,
        files=[ExpectedFile(a.filename, a.sha256) for a in release.artifacts.all()],
        # A workflow publishes the approved files (Trusted Publishing): the
        # index must serve exactly their digests, as after our own upload.
        own_build=True,
        wait_seconds=settings.INDEX_WAIT_SECONDS,
        install_attempts=settings.VERIFY_ATTEMPTS,
        install_backoff=settings.VERIFY_BACKOFF,
    )
    needs_sbom = not Sbom.objects.filter(release=release).exists()
    checks = Checks()
    making: Future[dict[str, Any]] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"job-{job.pk}-sbom") as pool:

            def start_sbom(python: Path) -> None:
                nonlocal making
                ws.step("making the SBOM (CycloneDX 1.6) beside the import and the checks")
                making = pool.submit(make_sbom, ws, python)

            output = verify_release(ws, request, checks, once_installed=start_sbom if needs_sbom else None)
            failed = check_steps.after_install_checks(
                ws,
                checks,
                project=release.project.name,
                version=release.version,
                wheel=output.wheel,
                venv_python=output.python,
                project_page_url=_project_page_url(deployment),
                page_policy=RetryPolicy(attempts=settings.VERIFY_ATTEMPTS, backoff=settings.VERIFY_BACKOFF),
            )
            failed += provenance_check(ws, deployment, checks)
            document = making.result() if making is not None else None
    finally:
        _record_checks(deployment, checks)
    if document is not None:
        sbom_record(release, document)
        _scan(ws, release, retried_later=True)
    if failed:
        raise StepFailed("Post-publication checks failed. " + " ".join(failed))
    _record_verified(deployment, output)


def _project_page_url(deployment: Deployment) -> str:
    template = deployment.environment.project_url_template
    if not template:
        return ""
    try:
        return template.format(name=deployment.release.project.name, version=deployment.release.version)
    except (KeyError, IndexError, ValueError):
        raise StepFailed(f"The environment's project URL template {template!r} is not valid.") from None


def _record_checks(deployment: Deployment, checks: Checks) -> None:
    for check in checks.done:
        check_record(deployment, check.name, passed=check.passed, detail=check.detail, seconds=check.seconds)


def _record_verified(deployment: Deployment, output: VerifyOutput) -> None:
    """Each file is verified, with what the index served. Files a project's
    workflow published (Trusted Publishing) reach the index here."""
    for record in deployment.files.select_related("artifact"):
        served = output.files.get(record.artifact.filename) or record.index_sha256
        if record.state == DeploymentFile.State.PENDING:
            record = (
                transition(
                    record,
                    DeploymentFile.State.ON_INDEX,
                    outcome=DeploymentFile.Outcome.UPLOADED,
                    reason="uploaded by the project's workflow",
                    changes={"index_sha256": served},
                )
                or record
            )
        if record.state == DeploymentFile.State.ON_INDEX:
            transition(record, DeploymentFile.State.VERIFIED, changes={"index_sha256": served})
    Deployment.objects.filter(pk=deployment.pk).update(verified_modules=output.modules)


def scan_work(ws: Workspace, job: Job) -> None:
    _scan(ws, _release(job))


def _scan(ws: Workspace, release: Release, *, retried_later: bool = False) -> None:
    ws.step("asking the vulnerability service about every SBOM component")
    try:
        report = release_scan(release)
    except TransientError as exc:
        if not retried_later:
            raise
        ws.log.write(f"vulnerability scan not done: {exc}")
        return
    ws.log.write(f"{report.components} components scanned, {len(report.new_findings)} new findings")
    for finding in report.new_findings:
        ws.log.write(f"{finding.vuln_id}: {finding.package} {finding.version} ({finding.severity})")


def webhook_work(ws: Workspace, job: Job) -> None:
    if job.delivery is None:
        raise StepFailed(f"{job} has no webhook delivery.")
    ws.step(f"processing {job.delivery}")
    webhook_process(job.delivery)


WORK: dict[str, Work] = {
    Kind.BUILD: build_work,
    Kind.COLLECT: collect_work,
    Kind.UPLOAD: upload_work,
    Kind.VERIFY: verify_work,
    Kind.DISPATCH: dispatch_work,
    Kind.TRACK: track_work,
    Kind.SCAN: scan_work,
    Kind.WEBHOOK: webhook_work,
}
