"""Cached build environments: one per project and exact set of build
requirements, with its bytecode compiled, reused by that project's builds.

A build in a fresh isolated environment spends most of its time making the
environment and compiling the back-end's modules on every start (in a
throw-away folder, they are compiled again each time). A cached environment
takes that away, safely:

* it belongs to one project: a project's build runs its own code (setup.py,
  plugins) inside it, and nothing another project builds runs there;
* only the job that makes it writes it (in the sandbox, for the steps that
  run Python in it); the builds that use it see it read-only, and no other
  project's sandbox sees it at all;
* its key is the project, the Python, the build index and the exact
  ``[build-system] requires`` strings: any change makes a new one;
* it is made again after ``BUILD_ENV_MAX_AGE_HOURS``, so new releases of the
  back-end arrive as they would in an isolated build (0: no caching), and
  removed once unused for twice that;
* it is made under a file lock, and used only once its ``ready`` file holds
  what was installed, which every build logs;
* a build that fails in it is built again in isolation, and that result is
  the one that counts; the environment is discarded, and the next build
  makes it anew.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from packaging.requirements import InvalidRequirement, Requirement

from releases.errors import StepFailed
from releases.steps import runner, untrusted
from releases.steps.netproxy import NetworkAllowance
from releases.steps.sandbox import Sandbox, index_network
from releases.steps.tools import python_bin, uv_bin
from releases.steps.workspace import Workspace

READY = "ready.json"
PYPROJECT_LIMIT = 1 << 20


@dataclass(frozen=True)
class BuildEnvironment:
    folder: Path
    installed: list[str]

    @property
    def python(self) -> Path:
        return self.folder / "bin" / "python"

    @property
    def usable(self) -> bool:
        return (self.folder / READY).exists()

    def discard(self) -> None:
        """Never use it again: a build failed in it (the next one makes it anew)."""
        (self.folder / READY).unlink(missing_ok=True)


def build_requirements(source: Path) -> list[str] | None:
    """The checkout's ``[build-system] requires``, or None when it has none a
    cache can be keyed on (no pyproject.toml, no table, or invalid entries:
    the isolated build reports those). A pyproject.toml that is a link is
    not followed: the checkout is the package's."""
    try:
        data = tomllib.loads(untrusted.read_file(source, "pyproject.toml", limit=PYPROJECT_LIMIT).decode("utf-8"))
    except (StepFailed, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    system = data.get("build-system")
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        return None
    try:
        return sorted(str(Requirement(r)) for r in requires)
    except InvalidRequirement:
        return None


def build_index_network() -> NetworkAllowance:
    """What a sandbox that fetches build requirements may reach: the build index."""
    return index_network([settings.BUILD_INDEX_URL])


def cached_build_environment(ws: Workspace, project: str, source: Path) -> BuildEnvironment | None:
    """The project's cached build environment for ``source``'s requirements,
    made if needed; None to build in isolation instead."""
    max_age = settings.BUILD_ENV_MAX_AGE_HOURS * 3600
    requires = build_requirements(source)
    if not max_age or requires is None:
        return None
    key = hashlib.sha256(
        json.dumps([project, python_bin(), sys.version, settings.BUILD_INDEX_URL, requires]).encode()
    ).hexdigest()[:24]
    root = settings.TOOL_CACHE_DIR / "build-envs"
    root.mkdir(parents=True, exist_ok=True)
    folder = root / key
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = _read_ready(folder, project, requires, max_age)
        if ready is not None:
            ws.log.write(f"build environment: cached, {', '.join(ready.installed)}")
            return ready
        _prune(root, max_age)
        return _make(ws, folder, project, requires)


def _read_ready(folder: Path, project: str, requires: list[str], max_age: float) -> BuildEnvironment | None:
    try:
        stamp = folder / READY
        if time.time() - stamp.stat().st_mtime > max_age:
            return None
        data = json.loads(untrusted.read_file(folder, READY, limit=PYPROJECT_LIMIT))
        if data["project"] != project or data["requires"] != requires:
            return None
        installed = data["installed"]
    except (OSError, StepFailed, ValueError, KeyError, TypeError):
        return None
    ready = BuildEnvironment(folder, [str(i) for i in installed])
    return ready if ready.python.exists() else None


def _prune(root: Path, max_age: float) -> None:
    """Remove the environments nobody has made or used for twice their
    lifetime: a project's former requirements, a project that stopped
    releasing. One in use is locked, and skipped."""
    cutoff = time.time() - 2 * max_age
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        stamp = folder / READY
        try:
            made = (stamp if stamp.exists() else folder).stat().st_mtime
        except OSError:
            continue
        if made > cutoff:
            continue
        with (root / f"{folder.name}.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(folder, ignore_errors=True)


def _make(ws: Workspace, folder: Path, project: str, requires: list[str]) -> BuildEnvironment:
    """1. A new virtual environment (``uv venv``: the console's own Python).
    2. The requirements from the build index, as wheels, from the worker's
       own cache: outside the sandbox, since unpacking a wheel runs none of
       its code (``--no-build``). When one needs building from an sdist,
       they are installed in the sandbox instead, this folder writable and
       the build index reachable through its proxy.
    3. Bytecode compiled, and what is installed listed, in the sandbox
       (Python would run the requirements' ``.pth`` files).
    4. What was installed, in the ready file, which the worker writes
       without following a link (the sandbox wrote in the folder before).
    """
    ws.step("making a build environment for " + (", ".join(requires) or "no requirements"))
    shutil.rmtree(folder, ignore_errors=True)
    env = runner.clean_env(ws)
    runner.run(
        ws,
        [uv_bin(), "venv", "--quiet", "--no-config", "--python", python_bin(), str(folder)],
        env=env,
        show=["uv", "venv", "build-env"],
    )
    python = folder / "bin" / "python"
    install = [uv_bin(), "pip", "install", "--no-config", "--python", str(python)]
    install += ["--default-index", settings.BUILD_INDEX_URL]
    if requires:
        wheels = runner.run(
            ws,
            [*install, "--no-build", *requires],
            env=env,
            check=False,
            show=["uv", "pip", "install", "--no-build", *requires],
        )
        if wheels.returncode != 0:
            ws.log.write("build environment: not all of them are wheels; installing in the sandbox")
            runner.run(
                ws,
                [*install, *requires],
                env=env,
                show=["uv", "pip", "install", *requires],
                sandbox=Sandbox(writable=(folder,), network=build_index_network()),
            )
    runner.run(
        ws,
        [str(python), "-I", "-S", "-m", "compileall", "-q", "-j", "0", str(folder / "lib")],
        env=env,
        check=False,
        show=["python", "-m", "compileall", "build-env/lib"],
        sandbox=Sandbox(writable=(folder,)),
    )
    frozen = runner.run(
        ws,
        [uv_bin(), "pip", "freeze", "--no-config", "--python", str(python)],
        env=env,
        show=["uv", "pip", "freeze"],
        sandbox=Sandbox(read_only=(folder,)),
    )
    installed = [line.strip() for line in frozen.tail if "==" in line]
    stamp = json.dumps({"project": project, "requires": requires, "installed": installed}).encode()
    fd = os.open(folder / READY, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(stamp)
    return BuildEnvironment(folder, installed)
