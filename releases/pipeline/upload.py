"""The upload step: send the release's stored files, sdist first, each at
most once (DESIGN.md principles 3, 4 and 5)."""

from __future__ import annotations

from django.core.files.storage import storages

from releases.errors import StepFailed
from releases.models import Deployment, DeploymentFile
from releases.pipeline import index_client, runner
from releases.pipeline.context import JobContext
from releases.pipeline.tools import python_bin
from releases.services.credentials import credential_reveal


def upload_deployment(ctx: JobContext, deployment: Deployment) -> None:
    """Send the release's files the index does not have, sdist first:

    1. Ask the index's simple API which filenames it has. Same sha256: skip
       that file and say so. Another sha256: stop before anything is sent,
       nothing overwritten.
    2. Copy the missing stored files into the job folder (their sha256
       checked again) and send them with one twine call, sdist first; the
       credential is only in twine's environment. twine stops at the first
       file the index refuses.
    3. Ask the index again, and record each file's outcome on its own: the
       index, not twine's exit status, says what it now holds.
    """
    environment = deployment.environment
    release = deployment.release
    files = list(deployment.files.select_related("artifact").order_by("artifact__kind", "artifact__filename"))
    ctx.step(f"checking {environment.index_url} for {', '.join(f.artifact.filename for f in files)}")
    listed = index_client.list_files(environment.index_url, release.project.name)
    missing = []
    for record in files:
        existing = listed.get(record.artifact.filename)
        if existing is not None:
            _record_existing(ctx, record, existing)
        else:
            missing.append(record)
    if not missing:
        return
    storage = storages["artifacts"]
    paths = []
    for record in missing:
        artifact = record.artifact
        local = ctx.workdir / artifact.filename
        with storage.open(artifact.path, "rb") as source, local.open("wb") as target:
            target.write(source.read())
        if runner.sha256_file(local) != artifact.sha256:
            raise StepFailed(f"The stored {artifact.filename} no longer has its recorded sha256; nothing was sent.")
        paths.append(local)
    names = [record.artifact.filename for record in missing]
    ctx.step("uploading " + ", ".join(names))
    env = runner.clean_env(
        ctx, {"TWINE_NON_INTERACTIVE": "1", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    )
    if environment.credential is not None:
        env["TWINE_USERNAME"] = environment.credential.username
        env["TWINE_PASSWORD"] = credential_reveal(environment.credential)
    result = runner.run(
        ctx,
        [
            python_bin(),
            "-m",
            "twine",
            "--no-color",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            environment.upload_url,
            *[str(p) for p in paths],
        ],
        env=env,
        check=False,
        show=["twine", "upload", "--repository-url", environment.upload_url, *names],
    )
    landed_files = index_client.list_files(environment.index_url, release.project.name)
    for record in missing:
        artifact = record.artifact
        landed = landed_files.get(artifact.filename)
        if landed is not None and landed.sha256 == artifact.sha256:
            _set(record, DeploymentFile.State.UPLOADED, f"uploaded ({landed.url})", landed)
            ctx.log.write(f"{artifact.filename}: uploaded, sha256 {artifact.sha256}")
            continue
        if landed is not None:
            _record_existing(ctx, record, landed)
        message = f"twine upload of {artifact.filename} failed (exit {result.returncode})"
        if result.tail:
            message += ": " + result.tail[-1].strip()
        _set(record, DeploymentFile.State.FAILED, message)
        raise StepFailed(message)


def _record_existing(ctx: JobContext, record: DeploymentFile, existing: index_client.IndexFile) -> None:
    artifact = record.artifact
    if existing.sha256 == artifact.sha256:
        _set(
            record, DeploymentFile.State.SKIPPED, "already on the index with the same sha256; not sent again", existing
        )
        ctx.log.write(f"{artifact.filename}: already on the index with the same sha256, skipped")
        return
    message = (
        f"The index already has a different {artifact.filename} (sha256 {existing.sha256 or 'unknown'}, ours "
        f"{artifact.sha256}). Nothing was overwritten. A filename can never be reused on an index: "
        "release a new version."
    )
    _set(record, DeploymentFile.State.CONFLICT, message, existing)
    raise StepFailed(message)


def _set(record: DeploymentFile, state: str, message: str, found: index_client.IndexFile | None = None) -> None:
    record.state = state
    record.message = message
    if found is not None:
        record.index_sha256 = found.sha256
        record.url = found.url[:500]
    record.save(update_fields=["state", "message", "index_sha256", "url", "updated_at"])
