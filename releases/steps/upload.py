"""The upload step: send the release's stored files, sdist first, each at
most once (DESIGN.md principles 3, 4 and 5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from releases.clients import index
from releases.clients.index import IndexFile
from releases.steps import runner
from releases.steps.tools import python_bin
from releases.steps.workspace import Workspace

UPLOADED, SKIPPED, CONFLICT, FAILED = "uploaded", "skipped", "conflict", "failed"


@dataclass(frozen=True)
class UploadFile:
    filename: str
    sha256: str


@dataclass(frozen=True)
class UploadTarget:
    """Where the files go, and as whom. ``password`` only ever reaches
    twine's environment."""

    project: str
    upload_url: str
    index_url: str
    username: str = ""
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class FileResult:
    filename: str
    outcome: str  # UPLOADED, SKIPPED, CONFLICT or FAILED
    reason: str
    index_sha256: str = ""
    url: str = ""


@dataclass
class UploadResult:
    """What the index holds of each file now; ``error`` says why the upload
    stopped, if it did (the results up to there stand)."""

    files: list[FileResult] = field(default_factory=list)
    error: str = ""


def upload_files(
    ws: Workspace, target: UploadTarget, files: list[UploadFile], fetch: Callable[[UploadFile], Path]
) -> UploadResult:
    """Send the files the index does not have, sdist first (``files`` is in
    that order):

    1. Ask the index's simple API which filenames it has. Same sha256: skip
       that file and say so. Another sha256: stop before anything is sent,
       nothing overwritten.
    2. ``fetch`` each missing file into the job folder (its sha256 checked
       against the record) and send them with one twine call; the
       credential is only in twine's environment. twine stops at the first
       file the index refuses.
    3. Ask the index again: the index, not twine's exit status, says what
       it now holds, file by file.
    """
    result = UploadResult()
    ws.step(f"checking {target.index_url} for {', '.join(f.filename for f in files)}")
    listed = index.list_files(target.index_url, target.project)
    missing = []
    for file in files:
        existing = listed.get(file.filename)
        if existing is None:
            missing.append(file)
            continue
        result.files.append(_existing(ws, file, existing))
        if result.files[-1].outcome == CONFLICT:
            result.error = result.files[-1].reason
            return result
    if not missing:
        return result
    paths = [fetch(file) for file in missing]
    names = [file.filename for file in missing]
    ws.step("uploading " + ", ".join(names))
    env = runner.clean_env(
        ws, {"TWINE_NON_INTERACTIVE": "1", "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    )
    if target.password:
        env["TWINE_USERNAME"] = target.username
        env["TWINE_PASSWORD"] = target.password
    twine = runner.run(
        ws,
        [
            python_bin(),
            "-m",
            "twine",
            "--no-color",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            target.upload_url,
            *[str(p) for p in paths],
        ],
        env=env,
        check=False,
        show=["twine", "upload", "--repository-url", target.upload_url, *names],
    )
    landed = index.list_files(target.index_url, target.project)
    for file in missing:
        found = landed.get(file.filename)
        if found is not None and found.sha256 == file.sha256:
            result.files.append(FileResult(file.filename, UPLOADED, f"uploaded ({found.url})", found.sha256, found.url))
            ws.log.write(f"{file.filename}: uploaded, sha256 {file.sha256}")
            continue
        if found is not None:
            result.files.append(_existing(ws, file, found))
        else:
            reason = f"twine upload of {file.filename} failed (exit {twine.returncode})"
            if twine.tail:
                reason += ": " + twine.tail[-1].strip()
            result.files.append(FileResult(file.filename, FAILED, reason))
        result.error = result.files[-1].reason
        return result
    return result


def _existing(ws: Workspace, file: UploadFile, existing: IndexFile) -> FileResult:
    if existing.sha256 == file.sha256:
        ws.log.write(f"{file.filename}: already on the index with the same sha256, skipped")
        return FileResult(
            file.filename,
            SKIPPED,
            "already on the index with the same sha256; not sent again",
            existing.sha256,
            existing.url,
        )
    reason = (
        f"The index already has a different {file.filename} (sha256 {existing.sha256 or 'unknown'}, ours "
        f"{file.sha256}). Nothing was overwritten. A filename can never be reused on an index: "
        "release a new version."
    )
    return FileResult(file.filename, CONFLICT, reason, existing.sha256, existing.url)
