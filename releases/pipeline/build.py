"""The build step: fetch the source at the ref, build sdist and wheel once,
check them, and store them immutably with their sha256."""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from releases.errors import StepFailed
from releases.models import Artifact, Release
from releases.pipeline import runner
from releases.pipeline.build_env import BuildEnvironment, cached_build_environment
from releases.pipeline.context import JobContext
from releases.pipeline.tools import git_bin, python_bin, uv_bin


@dataclass
class BuildOutput:
    commit: str
    artifacts: list[Artifact]
    warnings: list[str]


def build_release(ctx: JobContext, release: Release) -> BuildOutput:
    """1. Fetch the source. 2. Build. 3. twine check. 4. Match name and
    version. 5. Store the files with their digests."""
    source = ctx.workdir / "src"
    dist = ctx.workdir / "dist"
    commit = fetch_source(ctx, release.project.source, release.ref, source)
    ctx.step(f"building sdist and wheel of {commit[:12]}, and twine check")
    epoch = runner.run(ctx, [git_bin(), "-C", str(source), "log", "-1", "--format=%ct"], show=["git", "log", "-1"])
    # Timestamps from the commit, so that the same commit builds the same bytes.
    env = runner.clean_env(ctx, {"SOURCE_DATE_EPOCH": epoch.tail[-1].strip()})
    build_env = cached_build_environment(ctx, release.project.name, source)
    outputs = build_dists(ctx, source, dist, env, build_env)
    files = sorted(path for path in dist.glob("*/*") if path.suffix in {".whl", ".gz"})
    check_names(release, files)
    warnings = twine_warnings(release, outputs)
    ctx.step("storing artifacts")
    return BuildOutput(commit=commit, artifacts=[store(release, path) for path in files], warnings=warnings)


def build_dists(
    ctx: JobContext, source: Path, dist: Path, env: dict[str, str], build_env: BuildEnvironment | None
) -> list[runner.Result]:
    """1. Build the sdist from the checkout into ``dist/sdist``.
    2. Build the wheel from that sdist into ``dist/wheel``, as ``python -m
       build`` does: a file the sdist leaves out fails the build here, not
       for a user installing from source. Meanwhile ``twine check`` reads
       the sdist.
    3. ``twine check`` the wheel.

    Returns the checks' results. The check thread touches no database: the
    log is written through its queue.
    """
    sdist = build_one(ctx, "sdist", source, dist / "sdist", env, build_env)
    checks: list[runner.Result] = []
    failures: list[BaseException] = []

    def check_sdist() -> None:
        try:
            checks.append(twine_check(ctx, "sdist", sdist))
        except BaseException as exc:  # re-raised in the job's own thread below
            failures.append(exc)

    thread = threading.Thread(target=check_sdist, name=f"job-{ctx.job.pk}-check-sdist")
    thread.start()
    try:
        wheels = build_one(ctx, "wheel", sdist, dist / "wheel", env, build_env)
    finally:
        thread.join()
    if failures:
        raise failures[0]
    checks.append(twine_check(ctx, "wheel", wheels))
    return checks


def build_one(
    ctx: JobContext, kind: str, source: Path, out: Path, env: dict[str, str], build_env: BuildEnvironment | None
) -> Path:
    """``uv build --sdist`` of a tree, or ``uv build --wheel`` of a tree or an
    sdist, in the cached build environment when there is one; the file it
    made. A build that fails there is built again in isolation, whose
    result counts, and the environment is made anew for the next build."""
    if build_env is not None and build_env.usable:
        cached = ["--no-build-isolation", "--python", str(build_env.python)]
        if _uv_build(ctx, kind, source, out, env, cached, shown=cached[:1], check=False).returncode == 0:
            return _made(kind, out)
        ctx.log.write(f"[{kind}] the cached build environment could not build it; building again in isolation")
        build_env.discard()
        shutil.rmtree(out, ignore_errors=True)
    isolated = ["--python", python_bin(), "--default-index", settings.BUILD_INDEX_URL]
    _uv_build(ctx, kind, source, out, env, isolated, shown=[])
    return _made(kind, out)


def _uv_build(
    ctx: JobContext,
    kind: str,
    source: Path,
    out: Path,
    env: dict[str, str],
    options: list[str],
    *,
    shown: list[str],
    check: bool = True,
) -> runner.Result:
    return runner.run(
        ctx,
        [uv_bin(), "build", f"--{kind}", *options, "--out-dir", str(out), "--no-config", str(source)],
        show=["uv", "build", f"--{kind}", *shown, "--out-dir", f"dist/{kind}", source.name],
        env=env,
        check=check,
        prefix=f"[{kind}] ",
    )


def _made(kind: str, out: Path) -> Path:
    built = sorted(p for p in out.iterdir() if p.suffix in {".whl", ".gz"}) if out.is_dir() else []
    if len(built) != 1:
        raise StepFailed(f"uv build --{kind} made {[p.name for p in built]}; expected one file.")
    return built[0]


def twine_check(ctx: JobContext, kind: str, path: Path) -> runner.Result:
    return runner.run(
        ctx,
        [python_bin(), "-m", "twine", "--no-color", "check", str(path)],
        check=False,
        show=["twine", "check", path.name],
        prefix=f"[{kind}] ",
    )


def fetch_source(ctx: JobContext, source: str, ref: str, target: Path) -> str:
    ctx.step(f"fetching {ref}")
    runner.run(
        ctx,
        [git_bin(), "clone", "--quiet", "--no-checkout", "--", source, str(target)],
        show=["git", "clone", "--no-checkout", source, "src"],
    )
    resolved = runner.run(
        ctx,
        [git_bin(), "-C", str(target), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        check=False,
        show=["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
    )
    if resolved.returncode != 0 or not resolved.tail:
        raise StepFailed(f"The ref {ref!r} does not exist in {source}. Push the tag or branch, then build again.")
    commit = resolved.tail[-1].strip()
    runner.run(
        ctx,
        [git_bin(), "-C", str(target), "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit],
        show=["git", "checkout", "--detach", commit],
    )
    return commit


def check_names(release: Release, files: list[Path]) -> None:
    """Refuse a build whose files are not exactly this project and version."""
    sdists = [p for p in files if p.name.endswith(".tar.gz")]
    wheels = [p for p in files if p.suffix == ".whl"]
    if len(sdists) != 1 or not wheels:
        raise StepFailed(f"The build made {[p.name for p in files]}; expected one sdist and at least one wheel.")
    expected = (canonicalize_name(release.project.name), Version(release.version))
    for path in files:
        try:
            if path.suffix == ".whl":
                name, version, _, _ = parse_wheel_filename(path.name)
            else:
                name, version = parse_sdist_filename(path.name)
        except (InvalidWheelFilename, InvalidSdistFilename) as exc:
            raise StepFailed(f"The build made a file with an invalid name: {exc}") from None
        if (canonicalize_name(name), version) != expected:
            raise StepFailed(
                f"The build made {path.name} ({name} {version}), but this release is "
                f"{release.project.name} {release.version}. Set the version in the project's metadata "
                "to match the release (or the tag, for dynamic versions)."
            )


_WARNING = re.compile(r"^\s*WARNING\s+(.*)$")


def twine_warnings(release: Release, checks: list[runner.Result]) -> list[str]:
    """What ``twine check`` said of the files: errors fail the build, warnings
    are kept (and fail it when the project is strict)."""
    tails = [line for result in checks for line in result.tail]
    warnings = [m.group(1).strip() for line in tails if (m := _WARNING.match(line))]
    if any(result.returncode != 0 for result in checks):
        errors = [line.strip() for line in tails if line.strip().startswith("ERROR")]
        raise StepFailed("twine check failed: " + ("; ".join(errors) or "see the log"))
    if warnings and release.project.strict_checks:
        raise StepFailed("twine check warned, and this project is strict: " + "; ".join(warnings))
    return warnings


def store(release: Release, path: Path) -> Artifact:
    """Put ``path`` in artifact storage; an existing file must be the same bytes."""
    storage = storages["artifacts"]
    name = f"{release.project.name}/{release.version}/{path.name}"
    digest = runner.sha256_file(path)
    if storage.exists(name):
        with storage.open(name, "rb") as existing:
            stored = hashlib.sha256(existing.read()).hexdigest()
        if stored != digest:
            if Artifact.objects.filter(path=name).exists():
                raise StepFailed(f"Artifact storage already holds a different {path.name}; it is never overwritten.")
            # Left by an attempt that died before the release was recorded
            # as built: nobody ever saw or shipped those bytes.
            storage.delete(name)
    if not storage.exists(name):
        with path.open("rb") as handle:
            saved = storage.save(name, File(handle))
        if saved != name:
            raise StepFailed(f"Artifact storage saved {path.name} under another name ({saved}).")
    return Artifact(
        release=release,
        filename=path.name,
        kind=Artifact.Kind.WHEEL if path.suffix == ".whl" else Artifact.Kind.SDIST,
        size=path.stat().st_size,
        sha256=digest,
        path=name,
    )
