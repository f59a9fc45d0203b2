"""The build step: fetch the source at the ref, build sdist and wheel once,
check them, and hand back the files (the services store them)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from releases.errors import StepFailed
from releases.steps import runner, untrusted
from releases.steps.build_env import BuildEnvironment, build_index_network, cached_build_environment
from releases.steps.sandbox import NO_NETWORK, Sandbox
from releases.steps.tools import git_bin, python_bin, uv_bin
from releases.steps.workspace import Workspace


@dataclass(frozen=True)
class BuildRequest:
    """What to build: a project's source at a ref, for one version."""

    project: str
    version: str
    source: str
    ref: str
    strict: bool = False  # twine check warnings fail the build
    subdirectory: str = ""  # where the package is in the repository (a monorepo's folder)


@dataclass
class BuildOutput:
    commit: str
    files: list[Path]  # one sdist first, then the wheels
    warnings: list[str]


def build_release(ws: Workspace, request: BuildRequest) -> BuildOutput:
    """1. Fetch the source. 2. Build, in the sandbox. 3. twine check, in the
    sandbox. 4. Take the files out of the job's folder. 5. Match name and
    version."""
    source = ws.workdir / "src"
    dist = ws.workdir / "dist"
    commit = fetch_source(ws, request.source, request.ref, source)
    tree = package_tree(source, request.subdirectory)
    ws.step(
        f"building sdist and wheel of {commit[:12]}{f' in {request.subdirectory}' if request.subdirectory else ''}, and twine check"
    )
    epoch = runner.run(ws, [git_bin(), "-C", str(source), "log", "-1", "--format=%ct"], show=["git", "log", "-1"])
    # Timestamps from the commit, so that the same commit builds the same bytes.
    env = runner.clean_env(ws, {"SOURCE_DATE_EPOCH": epoch.tail[-1].strip()})
    build_env = cached_build_environment(ws, request.project, tree)
    made, outputs = build_dists(ws, tree, dist, env, build_env)
    files = take_outputs(ws, made)
    check_names(request, files)
    warnings = twine_warnings(request, outputs)
    sdists = [p for p in files if p.name.endswith(".tar.gz")]
    return BuildOutput(commit=commit, files=sdists + [p for p in files if p not in sdists], warnings=warnings)


def package_tree(source: Path, subdirectory: str) -> Path:
    """The folder the package is built in: the checkout, or a folder of it
    (a monorepo's package), never a link leading out of the checkout."""
    if not subdirectory:
        return source
    tree = (source / subdirectory).resolve()
    if not tree.is_relative_to(source.resolve()):
        raise StepFailed(f"{subdirectory} leads out of the repository; name a folder inside it.")
    if not (tree / "pyproject.toml").is_file() and not (tree / "setup.py").is_file():
        raise StepFailed(
            f"The repository has no package in {subdirectory} at this ref (no pyproject.toml or setup.py there); "
            "check the project's subdirectory."
        )
    return tree


def take_outputs(ws: Workspace, made: list[Path]) -> list[Path]:
    """The built files, copied out of the job's folder into its private one
    (the package wrote them: only regular files, reached without following
    a link, at most ARTIFACT_MAX_BYTES each), sorted by name."""
    taken = []
    for path in made:
        target = ws.private / path.name
        untrusted.copy_file(ws.workdir, path.relative_to(ws.workdir), target, limit=settings.ARTIFACT_MAX_BYTES)
        taken.append(target)
    return sorted(taken)


def build_dists(
    ws: Workspace, source: Path, dist: Path, env: dict[str, str], build_env: BuildEnvironment | None
) -> tuple[list[Path], list[runner.Result]]:
    """1. Build the sdist from the checkout into ``dist/sdist``.
    2. Build the wheel from that sdist into ``dist/wheel``, as ``python -m
       build`` does: a file the sdist leaves out fails the build here, not
       for a user installing from source. Meanwhile ``twine check`` reads
       the sdist.
    3. ``twine check`` the wheel.

    Returns the two files (in the job's folder) and the checks' results.
    The check thread touches no database: the log is written through its
    queue.
    """
    sdist = build_one(ws, "sdist", source, dist / "sdist", env, build_env)
    checks: list[runner.Result] = []
    failures: list[BaseException] = []

    def check_sdist() -> None:
        try:
            checks.append(twine_check(ws, "sdist", sdist))
        except BaseException as exc:  # re-raised in the job's own thread below
            failures.append(exc)

    thread = threading.Thread(target=check_sdist, name=f"job-{ws.job_id}-check-sdist")
    thread.start()
    try:
        wheel = build_one(ws, "wheel", sdist, dist / "wheel", env, build_env)
    finally:
        thread.join()
    if failures:
        raise failures[0]
    checks.append(twine_check(ws, "wheel", wheel))
    return [sdist, wheel], checks


def build_one(
    ws: Workspace, kind: str, source: Path, out: Path, env: dict[str, str], build_env: BuildEnvironment | None
) -> Path:
    """``uv build --sdist`` of a tree, or ``uv build --wheel`` of a tree or an
    sdist, in the cached build environment when there is one; the file it
    made. A build that fails there is built again in isolation, whose
    result counts, and the environment is made anew for the next build."""
    if build_env is not None and build_env.usable:
        cached = ["--no-build-isolation", "--python", str(build_env.python)]
        # The environment is the project's own, and read-only to its build.
        read_only = Sandbox(read_only=(build_env.folder,))
        built = _uv_build(ws, kind, source, out, env, cached, shown=cached[:1], check=False, sandbox=read_only)
        if built.returncode == 0:
            return _made(ws, kind)
        ws.log.write(f"[{kind}] the cached build environment could not build it; building again in isolation")
        build_env.discard()
        out = out.with_name(f"{kind}-isolated")
    isolated = ["--python", python_bin(), "--default-index", settings.BUILD_INDEX_URL]
    # The build requirements come from the build index, through the sandbox's proxy.
    _uv_build(ws, kind, source, out, env, isolated, shown=[], sandbox=Sandbox(network=build_index_network()))
    return _made(ws, out.name)


def _uv_build(
    ws: Workspace,
    kind: str,
    source: Path,
    out: Path,
    env: dict[str, str],
    options: list[str],
    *,
    shown: list[str],
    sandbox: Sandbox,
    check: bool = True,
) -> runner.Result:
    return runner.run(
        ws,
        [uv_bin(), "build", f"--{kind}", *options, "--out-dir", str(out), "--no-config", str(source)],
        show=["uv", "build", f"--{kind}", *shown, "--out-dir", f"dist/{out.name}", source.name],
        env=env,
        check=check,
        prefix=f"[{kind}] ",
        sandbox=sandbox,
    )


def _made(ws: Workspace, folder: str) -> Path:
    """The one file a build made in ``dist/<folder>``."""
    built = [name for name in untrusted.regular_files(ws.workdir, f"dist/{folder}") if name.endswith((".whl", ".gz"))]
    if len(built) != 1:
        raise StepFailed(f"uv build made {built} in dist/{folder}; expected one file.")
    return ws.workdir / "dist" / folder / built[0]


def twine_check(ws: Workspace, kind: str, path: Path) -> runner.Result:
    """``twine check`` reads the archive the package made: in the sandbox,
    and isolated (``-I``): the job's folder, where it starts, is the
    package's, and a ``twine`` module there must not stand in for ours."""
    return runner.run(
        ws,
        [python_bin(), "-I", "-m", "twine", "--no-color", "check", str(path)],
        check=False,
        show=["twine", "check", path.name],
        prefix=f"[{kind}] ",
        sandbox=NO_NETWORK,
    )


def fetch_source(ws: Workspace, source: str, ref: str, target: Path) -> str:
    ws.step(f"fetching {ref}")
    runner.run(
        ws,
        [git_bin(), "clone", "--quiet", "--no-checkout", "--", source, str(target)],
        show=["git", "clone", "--no-checkout", source, "src"],
    )
    resolved = runner.run(
        ws,
        [git_bin(), "-C", str(target), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        check=False,
        show=["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
    )
    if resolved.returncode != 0 or not resolved.tail:
        raise StepFailed(f"The ref {ref!r} does not exist in {source}. Push the tag or branch, then build again.")
    commit = resolved.tail[-1].strip()
    runner.run(
        ws,
        [git_bin(), "-C", str(target), "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit],
        show=["git", "checkout", "--detach", commit],
    )
    return commit


def check_names(request: BuildRequest, files: list[Path]) -> None:
    """Refuse a build whose files are not exactly this project and version."""
    sdists = [p for p in files if p.name.endswith(".tar.gz")]
    wheels = [p for p in files if p.suffix == ".whl"]
    if len(sdists) != 1 or not wheels:
        raise StepFailed(f"The build made {[p.name for p in files]}; expected one sdist and at least one wheel.")
    expected = (canonicalize_name(request.project), Version(request.version))
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
                f"{request.project} {request.version}. Set the version in the project's metadata "
                "to match the release (or the tag, for dynamic versions)."
            )


_WARNING = re.compile(r"^\s*WARNING\s+(.*)$")


def twine_warnings(request: BuildRequest, checks: list[runner.Result]) -> list[str]:
    """What ``twine check`` said of the files: errors fail the build, warnings
    are kept (and fail it when the project is strict)."""
    tails = [line for result in checks for line in result.tail]
    warnings = [m.group(1).strip() for line in tails if (m := _WARNING.match(line))]
    if any(result.returncode != 0 for result in checks):
        errors = [line.strip() for line in tails if line.strip().startswith("ERROR")]
        raise StepFailed("twine check failed: " + ("; ".join(errors) or "see the log"))
    if warnings and request.strict:
        raise StepFailed("twine check warned, and this project is strict: " + "; ".join(warnings))
    return warnings
