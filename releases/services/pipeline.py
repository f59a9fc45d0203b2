"""Running a job, and what each job's end sets in motion.

build succeeded    → the release is built; waiting deployments queue uploads
                     (or workflow dispatches, for projects that publish
                     through their GitHub workflow)
upload succeeded   → the deployment verifies at once (no poll in between)
dispatch succeeded → the run it started is followed to its end
track succeeded    → the run published; the deployment verifies
verify succeeded   → the deployment succeeded, with its summary (the first
                     verify of a release also stores its SBOM and scans it)
scan               → a retried scan of the release's SBOM components
any failure      → the release or deployment fails with the job's reason
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from releases.errors import JobLost, StepFailed, TransientError
from releases.models import Deployment, DeploymentFile, Job, Release, Sbom
from releases.pipeline import checks
from releases.pipeline.build import build_release
from releases.pipeline.context import JobContext
from releases.pipeline.sbom import make_sbom
from releases.pipeline.upload import upload_deployment
from releases.pipeline.verify import VerifyOutput, verify_deployment
from releases.pipeline.workflow import dispatch_deployment, track_deployment
from releases.redaction import redact
from releases.selectors.supply import scan_policy_problem
from releases.services.approvals import approvals_problem
from releases.services.deployments import deployment_transition
from releases.services.jobs import job_claim, job_create, job_finish
from releases.services.releases import release_mark_building, release_record_build, release_record_build_failure
from releases.services.scans import release_scan
from releases.services.supply import sbom_record

logger = logging.getLogger(__name__)
Status = Deployment.Status


def job_run(job_id: int, *, task_id: str = "") -> None:
    """Claim job ``job_id`` and run it; return quietly if someone else has it."""
    claim = job_claim(job_id, task_id=task_id, worker=socket.gethostname())
    if claim is None:
        return
    job = Job.objects.select_related("release__project", "deployment__environment").get(pk=job_id)
    ctx = JobContext.open(job, claim)
    error = ""
    record: Callable[[], None] | None = None
    try:
        if job.attempts > 1:
            ctx.log.write(f"==> attempt {job.attempts}: the previous attempt's worker stopped answering")
        record = _run_step(ctx, job)
    except JobLost:
        logger.warning("job %s attempt %s: another worker owns it now; stopping", job_id, claim.attempt)
        ctx.close()
        return
    except (OperationalError, InterfaceError):
        # The database went away mid-job (a restart, a failover): not the
        # job's fault, so not a failure. The job stays running, its
        # heartbeat goes stale, and the reaper queues it again while
        # attempts remain.
        logger.warning("job %s attempt %s: lost the database; left for the reaper", job_id, claim.attempt)
        ctx.close()
        return
    except (StepFailed, TransientError) as exc:
        error = str(exc)
    except Exception as exc:  # a bug: fail the job with a reason rather than leave it running
        logger.exception("job %s failed unexpectedly", job_id)
        error = f"Internal error ({type(exc).__name__}): {exc}"
        ctx.log.write(redact(traceback.format_exc()))
    if error:
        ctx.log.write(f"==> failed: {error}")
    else:
        ctx.log.write("==> done")
    ctx.close()
    with transaction.atomic():
        outcome = Job.Outcome.FAILED if error else Job.Outcome.SUCCEEDED
        if not job_finish(claim, outcome=outcome, error=error):
            return
        job.refresh_from_db()
        if error:
            job_failed(job, redact(error))
        else:
            if record is not None:
                record()
            job_succeeded(job)


def _run_step(ctx: JobContext, job: Job) -> Callable[[], None] | None:
    """Run the job's work. What it returns is written in the same transaction
    that finishes the job, so that a worker killed in between leaves neither
    a finished job without its result nor a result with a running job."""
    if job.kind == Job.Kind.BUILD:
        if job.release.is_built:
            ctx.log.write("already built; a release is built once")
            return None
        release_mark_building(job.release)
        built = build_release(ctx, job.release)
        for warning in built.warnings:
            ctx.log.write(f"twine check warning: {warning}")
        return lambda: release_record_build(
            job.release, commit=built.commit, artifacts=built.artifacts, warnings=built.warnings
        )
    if job.kind == Job.Kind.SCAN:
        _scan(ctx, job.release)
        return None
    deployment = job.deployment
    if deployment is None:
        raise StepFailed(f"{job.get_kind_display()} job has no deployment")
    if job.kind == Job.Kind.UPLOAD:
        _upload(ctx, deployment)
    elif job.kind == Job.Kind.VERIFY:
        _verify(ctx, deployment)
    elif job.kind == Job.Kind.DISPATCH:
        _dispatch(ctx, deployment)
    elif job.kind == Job.Kind.TRACK:
        track_deployment(ctx, deployment)
    else:
        raise StepFailed(f"This worker cannot run {job.get_kind_display()} jobs yet.")
    return None


def _upload(ctx: JobContext, deployment: Deployment) -> None:
    _gate(deployment, "uploaded")
    upload_deployment(ctx, deployment)


def _dispatch(ctx: JobContext, deployment: Deployment) -> None:
    _gate(deployment, "dispatched")
    dispatch_deployment(ctx, deployment)


def _gate(deployment: Deployment, what: str) -> None:
    """Move to UPLOADING, then check the four-eyes rules and the scan policy
    again, right before the first byte leaves (or the workflow starts)."""
    deployment.refresh_from_db()
    if deployment.status == Status.QUEUED:
        deployment_transition(deployment, Status.UPLOADING)
    elif deployment.status != Status.UPLOADING:  # a second run after a lost worker keeps UPLOADING
        raise StepFailed(f"The deployment is {deployment.get_status_display().lower()}; nothing was {what}.")
    problem = approvals_problem(deployment) or scan_policy_problem(deployment.release, deployment.environment)
    if problem:
        raise StepFailed(f"Not {what}: {problem}")


def _verify(ctx: JobContext, deployment: Deployment) -> None:
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

    A failed install or import stores no SBOM.
    """
    release = deployment.release
    needs_sbom = not Sbom.objects.filter(release=release).exists()
    making: Future[dict[str, Any]] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"job-{ctx.job.pk}-sbom") as pool:

        def start_sbom(python: Path) -> None:
            nonlocal making
            ctx.step("making the SBOM (CycloneDX 1.6) beside the import and the checks")
            making = pool.submit(make_sbom, ctx, python)

        output = verify_deployment(ctx, deployment, once_installed=start_sbom if needs_sbom else None)
        failed = checks.after_install_checks(ctx, deployment, output.python)
        document = making.result() if making is not None else None
    if document is not None:
        sbom_record(release, document)
        _scan(ctx, release, retried_later=True)
    if failed:
        raise StepFailed("Post-publication checks failed. " + " ".join(failed))
    _record_verified(deployment, output)


def _scan(ctx: JobContext, release: Release, *, retried_later: bool = False) -> None:
    ctx.step("asking the vulnerability service about every SBOM component")
    try:
        report = release_scan(release)
    except TransientError as exc:
        if not retried_later:
            raise
        ctx.log.write(f"vulnerability scan not done: {exc}")
        return
    ctx.log.write(f"{report.components} components scanned, {len(report.new_findings)} new findings")
    for finding in report.new_findings:
        ctx.log.write(f"{finding.vuln_id}: {finding.package} {finding.version} ({finding.severity})")


def _record_verified(deployment: Deployment, output: VerifyOutput) -> None:
    for record in deployment.files.select_related("artifact"):
        record.state = DeploymentFile.State.VERIFIED
        record.index_sha256 = output.files.get(record.artifact.filename) or record.index_sha256
        record.save(update_fields=["state", "index_sha256", "updated_at"])
    summary = dict(deployment.summary)
    summary["verify"] = {"files": output.files, "modules": output.modules, "seconds": round(output.seconds, 2)}
    Deployment.objects.filter(pk=deployment.pk).update(summary=summary)


def job_succeeded(job: Job) -> None:
    if job.kind == Job.Kind.UPLOAD and job.deployment is not None:
        deployment_transition(job.deployment, Status.VERIFYING)
        job_create(kind=Job.Kind.VERIFY, release=job.release, deployment=job.deployment)
    elif job.kind == Job.Kind.DISPATCH and job.deployment is not None:
        job_create(kind=Job.Kind.TRACK, release=job.release, deployment=job.deployment)
    elif job.kind == Job.Kind.TRACK and job.deployment is not None:
        deployment_transition(job.deployment, Status.VERIFYING)
        job_create(kind=Job.Kind.VERIFY, release=job.release, deployment=job.deployment)
    elif job.kind == Job.Kind.VERIFY and job.deployment is not None:
        deployment = job.deployment
        deployment.refresh_from_db()
        summary = shipped_summary(deployment)
        Deployment.objects.filter(pk=deployment.pk).update(summary=summary)
        deployment_transition(deployment, Status.SUCCEEDED, data={"files": summary["files"]})


def job_failed(job: Job, reason: str) -> None:
    if job.kind == Job.Kind.BUILD:
        release_record_build_failure(job.release, reason)
    elif job.deployment is not None:
        deployment = job.deployment
        deployment.refresh_from_db()
        if deployment.is_active:
            deployment_transition(deployment, Status.FAILED, reason=f"{job.get_kind_display()} failed: {reason}")


def shipped_summary(deployment: Deployment) -> dict[str, object]:
    """What shipped: files with digests and where they are, and step times."""
    jobs = deployment.jobs.filter(state=Job.State.FINISHED).order_by("created_at")
    return {
        **deployment.summary,
        "version": deployment.release.version,
        "environment": deployment.environment.name,
        "index_url": deployment.environment.index_url,
        "files": {
            f.artifact.filename: {"sha256": f.artifact.sha256, "size": f.artifact.size, "state": f.state, "url": f.url}
            for f in deployment.files.select_related("artifact")
        },
        "steps": {j.kind: round(j.duration_seconds or 0, 2) for j in jobs},
        "checks": {c.name: {"passed": c.passed, "detail": c.detail} for c in deployment.checks.all()},
        "sbom_components": Sbom.objects.filter(release=deployment.release).values_list("components", flat=True).first(),
        "finished_at": timezone.now().isoformat(),
    }
