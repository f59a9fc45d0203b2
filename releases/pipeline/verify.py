"""The verify step: install the release from the environment's index into a
fresh environment, as a user would, and check what arrived."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages

from releases.errors import StepFailed, TransientError
from releases.models import Artifact, Deployment, Project
from releases.pipeline import index_client, runner
from releases.pipeline.checks import DEPENDENCIES_RESOLVE, FILES_ON_INDEX, INSTALLS, checked
from releases.pipeline.context import JobContext
from releases.pipeline.tools import python_bin, uv_bin


@dataclass
class VerifyOutput:
    files: dict[str, str]
    modules: list[str]
    seconds: float
    python: Path


def verify_deployment(
    ctx: JobContext, deployment: Deployment, *, once_installed: Callable[[Path], object] | None = None
) -> VerifyOutput:
    """1. Wait (bounded) until the index lists every file with our sha256.
    2. Make a fresh ``uv venv`` that reads no user or site configuration.
    3. Install ``name==version`` from the environment's index only, its
       dependencies from the fallback index, with our digests required.
       ``once_installed`` is then called with the environment's python.
    4. Import the top-level modules, and check dependency consistency.

    Steps 1, 3-4 and the consistency check are each recorded as a
    post-publication check of the deployment."""
    started = time.monotonic()
    environment = deployment.environment
    release = deployment.release
    artifacts = list(release.artifacts.all())
    # A project's own GitHub workflow builds its own files: what it published
    # is checked against the digests found on the index, and any difference
    # from the console's build is recorded rather than refused.
    own_build = release.project.publish_mode != Project.PublishMode.WORKFLOW
    with checked(deployment, FILES_ON_INDEX, f"every file listed with its sha256 on {environment.index_url}"):
        found = wait_for_files(ctx, deployment, own_build=own_build)
    venv = ctx.workdir / "venv"
    ctx.step("creating a clean environment")
    runner.run(
        ctx,
        [uv_bin(), "venv", "--quiet", "--no-config", "--python", python_bin(), str(venv)],
        show=["uv", "venv", "venv"],
    )
    python = venv / "bin" / "python"
    requirements = ctx.workdir / "requirements.txt"
    digests = [a.sha256 for a in artifacts] if own_build else [d for d in found.values() if d]
    hashes = " ".join(f"--hash=sha256:{digest}" for digest in sorted(set(digests)))
    requirements.write_text(f"{release.project.name}=={release.version} {hashes}\n")
    argv = [
        uv_bin(),
        "pip",
        "install",
        "--no-config",
        "--python",
        str(python),
        "--index",
        environment.index_url,
        "--default-index",
        environment.fallback_index_url or environment.index_url,
        "--refresh-package",
        release.project.name,
        "-r",
        str(requirements),
    ]
    show = [
        "uv",
        "pip",
        "install",
        "--index",
        environment.index_url,
        *(["--default-index", environment.fallback_index_url] if environment.fallback_index_url else []),
        f"{release.project.name}=={release.version}",
        "(sha256 required)",
    ]
    with checked(deployment, INSTALLS, f"installed from {environment.index_url} and imported"):
        for attempt in range(1, settings.VERIFY_ATTEMPTS + 1):
            ctx.step(f"installing {release.project.name}=={release.version} (attempt {attempt})")
            result = runner.run(ctx, argv, show=show, check=False)
            if result.returncode == 0:
                break
            if any("Hash mismatch" in line for line in result.tail):
                raise StepFailed(
                    f"The index served {release.project.name} {release.version} with a sha256 that is not one of "
                    "the release's artifacts: what is on the index is not what the console built."
                )
            if attempt == settings.VERIFY_ATTEMPTS:
                raise StepFailed(
                    f"{release.project.name}=={release.version} did not install from {environment.index_url} after "
                    f"{attempt} attempts: {result.tail[-1].strip() if result.tail else 'see the log'}"
                )
            time.sleep(settings.VERIFY_BACKOFF * 2 ** (attempt - 1))
        if once_installed is not None:
            once_installed(python)
        modules = top_level_modules(artifacts)
        ctx.step("importing " + ", ".join(modules))
        runner.run(
            ctx,
            [
                str(python),
                "-I",
                "-c",
                "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n    print('imported', m)",
                *modules,
            ],
            show=["python", "-c", "import " + ", ".join(modules)],
        )
    ctx.step("checking dependency consistency")
    with checked(deployment, DEPENDENCIES_RESOLVE, "uv pip check: all installed packages are compatible"):
        runner.run(ctx, [uv_bin(), "pip", "check", "--no-config", "--python", str(python)], show=["uv", "pip", "check"])
    return VerifyOutput(files=found, modules=modules, seconds=time.monotonic() - started, python=python)


def wait_for_files(ctx: JobContext, deployment: Deployment, *, own_build: bool = True) -> dict[str, str]:
    """The index's sha256 of each artifact, once it lists all of them.

    With ``own_build`` (the console uploaded them), a different digest is
    refused; otherwise it is logged and returned as found."""
    environment = deployment.environment
    artifacts = list(deployment.release.artifacts.all())
    deadline = time.monotonic() + settings.INDEX_WAIT_SECONDS
    delay = 0.2
    ctx.step(f"looking for {len(artifacts)} files on {environment.index_url}")
    while True:
        try:
            listed = index_client.list_files(environment.index_url, deployment.release.project.name)
        except TransientError as exc:
            listed = {}
            ctx.log.write(f"the index did not answer: {exc}")
        missing = [a.filename for a in artifacts if a.filename not in listed]
        for artifact in artifacts:
            entry = listed.get(artifact.filename)
            if entry is not None and entry.sha256 and entry.sha256 != artifact.sha256 and own_build:
                raise StepFailed(
                    f"The index lists {artifact.filename} with sha256 {entry.sha256}, but the release's file has "
                    f"{artifact.sha256}: it is not the file the console built."
                )
        if not missing:
            for artifact in artifacts:
                digest = listed[artifact.filename].sha256
                ctx.log.write(f"{artifact.filename}: on the index, sha256 {digest}")
                if digest != artifact.sha256:
                    ctx.log.write(f"{artifact.filename}: not the console's build (sha256 {artifact.sha256})")
            return {a.filename: listed[a.filename].sha256 for a in artifacts}
        if time.monotonic() >= deadline:
            raise StepFailed(
                f"After {settings.INDEX_WAIT_SECONDS} s the index still does not list {', '.join(missing)}."
            )
        ctx.log.write(f"not listed yet: {', '.join(missing)}; waiting {delay:.1f} s")
        time.sleep(delay)
        delay = min(delay * 2, 10)


def top_level_modules(artifacts: list[Artifact]) -> list[str]:
    """The importable top-level names in the release's wheel."""
    wheel = next((a for a in artifacts if a.kind == "wheel"), None)
    if wheel is None:
        raise StepFailed("The release has no wheel to read its modules from.")
    names: set[str] = set()
    with storages["artifacts"].open(wheel.path, "rb") as handle, zipfile.ZipFile(handle) as archive:
        for member in archive.namelist():
            first = member.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in member and member.endswith("/__init__.py"):
                names.add(first)
            elif "/" not in member and member.endswith(".py"):
                names.add(member[:-3])
            elif "/" in member and first.isidentifier() and member.endswith(".py"):
                names.add(first)  # namespace package
    modules = sorted(n for n in names if n.isidentifier())
    if not modules:
        raise StepFailed(f"{wheel.filename} holds no importable module.")
    return modules
