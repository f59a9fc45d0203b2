"""The verify step: install the release from the environment's index into a
fresh environment, as a user would, and check what arrived."""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import sys_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from releases.clients import http, index
from releases.clients.http import RetryPolicy
from releases.clients.index import IndexFile
from releases.errors import StepFailed, TransientError
from releases.steps import runner
from releases.steps.checks import DEPENDENCIES_RESOLVE, FILES_ON_INDEX, INSTALLS, Checks
from releases.steps.sandbox import NO_NETWORK, Sandbox, index_network
from releases.steps.tools import python_bin, uv_bin
from releases.steps.workspace import Workspace


@dataclass(frozen=True)
class ExpectedFile:
    filename: str
    sha256: str


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify, and where from.

    ``own_build``: the console built and uploaded ``files``, so the index
    must serve exactly those digests. Otherwise (a project's own GitHub
    workflow built them) what the index serves is installed and recorded.
    """

    project: str
    version: str
    index_url: str
    fallback_index_url: str
    files: list[ExpectedFile]
    own_build: bool = True
    wait_seconds: float = 120
    install_attempts: int = 5
    install_backoff: float = 1.0


@dataclass
class VerifyOutput:
    files: dict[str, str]  # filename: the sha256 the index serves
    modules: list[str]
    seconds: float
    python: Path
    wheel: Path  # the wheel installed, as downloaded from the index
    notes: list[str] = field(default_factory=list)


def verify_release(
    ws: Workspace, request: VerifyRequest, checks: Checks, *, once_installed: Callable[[Path], object] | None = None
) -> VerifyOutput:
    """1. Wait (bounded) until the index lists every file with its sha256.
    2. Download, from the addresses the index gives, the wheel this Python
       installs, and check its bytes against the digest.
    3. Make a fresh ``uv venv`` that reads no user or site configuration,
       and install that file: the release's own files come only from the
       environment's index, its dependencies only from the fallback index
       (a name planted on the environment's index is never asked for).
       ``once_installed`` is then called with the environment's python.
    4. Import the top-level modules, and check dependency consistency, in
       the sandbox: from here on the package's code runs.

    Steps 1, 3-4 and the consistency check are each noted in ``checks``."""
    started = time.monotonic()
    with checks.checked(FILES_ON_INDEX, f"every file listed with its sha256 on {request.index_url}"):
        listed = wait_for_files(ws, request)
    found = {name: entry.sha256 for name, entry in listed.items()}
    venv = ws.workdir / "venv"
    with checks.checked(INSTALLS, f"installed from {request.index_url} and imported"):
        wheel = download_wheel(ws, request, listed)
        modules = top_level_modules(wheel)
        ws.step("creating a clean environment")
        runner.run(
            ws,
            [uv_bin(), "venv", "--quiet", "--no-config", "--python", python_bin(), str(venv)],
            show=["uv", "venv", "venv"],
        )
        python = venv / "bin" / "python"
        install(ws, request, wheel, python)
        if once_installed is not None:
            once_installed(python)
        ws.step("importing " + ", ".join(modules))
        runner.run(
            ws,
            [
                str(python),
                "-I",
                "-c",
                "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n    print('imported', m)",
                *modules,
            ],
            show=["python", "-c", "import " + ", ".join(modules)],
            sandbox=NO_NETWORK,
        )
    ws.step("checking dependency consistency")
    with checks.checked(DEPENDENCIES_RESOLVE, "uv pip check: all installed packages are compatible"):
        runner.run(
            ws,
            [uv_bin(), "pip", "check", "--no-config", "--python", str(python)],
            show=["uv", "pip", "check"],
            sandbox=NO_NETWORK,
        )
    return VerifyOutput(files=found, modules=modules, seconds=time.monotonic() - started, python=python, wheel=wheel)


def wait_for_files(ws: Workspace, request: VerifyRequest) -> dict[str, IndexFile]:
    """The index's entry of each file, once it lists all of them.

    With ``own_build``, a different digest is refused; otherwise it is
    logged and returned as found."""
    deadline = time.monotonic() + request.wait_seconds
    delay = 0.2
    ws.step(f"looking for {len(request.files)} files on {request.index_url}")
    while True:
        try:
            listed = index.list_files(request.index_url, request.project)
        except TransientError as exc:
            listed = {}
            ws.log.write(f"the index did not answer: {exc}")
        missing = [f.filename for f in request.files if f.filename not in listed]
        for expected in request.files:
            entry = listed.get(expected.filename)
            if entry is not None and entry.sha256 and entry.sha256 != expected.sha256 and request.own_build:
                raise StepFailed(
                    f"The index lists {expected.filename} with sha256 {entry.sha256}, but the release's file has "
                    f"{expected.sha256}: it is not the file the console built."
                )
        if not missing:
            for expected in request.files:
                digest = listed[expected.filename].sha256
                ws.log.write(f"{expected.filename}: on the index, sha256 {digest}")
                if digest != expected.sha256:
                    ws.log.write(f"{expected.filename}: not the console's build (sha256 {expected.sha256})")
            return {f.filename: listed[f.filename] for f in request.files}
        if time.monotonic() >= deadline:
            raise StepFailed(f"After {request.wait_seconds:.0f} s the index still does not list {', '.join(missing)}.")
        ws.log.write(f"not listed yet: {', '.join(missing)}; waiting {delay:.1f} s")
        time.sleep(delay)
        delay = min(delay * 2, 10)


def installable_wheel(filenames: list[str]) -> str | None:
    """The wheel among ``filenames`` that this Python prefers, if any."""
    preference = {tag: rank for rank, tag in enumerate(sys_tags())}
    best: tuple[int, str] | None = None
    for filename in filenames:
        try:
            _, _, _, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        ranks = [preference[tag] for tag in tags if tag in preference]
        if ranks and (best is None or min(ranks) < best[0]):
            best = (min(ranks), filename)
    return best[1] if best else None


def download_wheel(ws: Workspace, request: VerifyRequest, listed: dict[str, IndexFile]) -> Path:
    """The wheel a user of this Python gets, fetched from the address the
    index lists and checked against the digest it must have."""
    filename = installable_wheel([name for name in listed if name.endswith(".whl")])
    if filename is None:
        raise StepFailed(
            f"None of the release's wheels installs on this worker's Python ({python_bin()}); "
            "verify needs a wheel for it."
        )
    entry = listed[filename]
    expected = next((f.sha256 for f in request.files if f.filename == filename), "") if request.own_build else ""
    wanted = expected or entry.sha256
    ws.step(f"downloading {filename} from the index")
    # Kept where no sandbox reaches: the checks read it after package code ran.
    target = ws.private / "from-index" / filename
    target.parent.mkdir(exist_ok=True)
    policy = RetryPolicy(attempts=request.install_attempts, backoff=request.install_backoff)
    response = http.request("GET", entry.url, what=f"the index at {request.index_url}", policy=policy, stream=True)
    if response.status_code != 200:
        raise StepFailed(f"The index answered {response.status_code} for {entry.url}.")
    with target.open("wb") as handle:
        for chunk in response.iter_content(1 << 20):
            handle.write(chunk)
    got = runner.sha256_file(target)
    if wanted and got != wanted:
        raise StepFailed(
            f"The index served {filename} with sha256 {got}, not {wanted}: what is on the index is not what "
            "the console built."
        )
    ws.log.write(f"{filename}: downloaded from {entry.url}, sha256 {got}")
    return target


def install(ws: Workspace, request: VerifyRequest, wheel: Path, python: Path) -> None:
    """Install the downloaded wheel, its digest required, and its
    dependencies from the fallback index only (the environment's own index
    when there is no fallback):

    1. Wheels only, outside the sandbox, from the worker's own cache:
       unpacking a wheel runs none of its code (``--no-build``), and the
       environment is fresh, so nothing of the package has run in it yet.
    2. When that fails (a dependency that is only an sdist, an index that
       is still catching up), in the sandbox, with the dependency index as
       its only network, retried; an sdist's build runs there.
    """
    dependencies_from = request.fallback_index_url or request.index_url
    digest = runner.sha256_file(wheel)
    outside = ws.private / "requirements.txt"
    outside.write_text(f"{request.project} @ {wheel.as_uri()} --hash=sha256:{digest}\n")
    # Written now, before any package code runs in the job's folder.
    inside = ws.workdir / "wheel" / wheel.name
    inside.parent.mkdir()
    shutil.copyfile(wheel, inside)
    requirements = ws.workdir / "requirements.txt"
    requirements.write_text(f"{request.project} @ {inside.as_uri()} --hash=sha256:{digest}\n")
    argv = [uv_bin(), "pip", "install", "--no-config", "--python", str(python), "--index-url", dependencies_from]
    show = ["uv", "pip", "install", wheel.name, "(sha256 required)", "--index-url", dependencies_from]
    ws.step(f"installing {request.project}=={request.version} (wheels only)")
    if (
        runner.run(ws, [*argv, "--no-build", "-r", str(outside)], show=[*show, "--no-build"], check=False).returncode
        == 0
    ):
        return
    network = Sandbox(network=index_network([dependencies_from]))
    for attempt in range(1, request.install_attempts + 1):
        ws.step(f"installing {request.project}=={request.version} in the sandbox (attempt {attempt})")
        result = runner.run(ws, [*argv, "-r", str(requirements)], show=show, check=False, sandbox=network)
        if result.returncode == 0:
            return
        if attempt == request.install_attempts:
            raise StepFailed(
                f"{request.project}=={request.version} did not install with its dependencies from "
                f"{dependencies_from} after {attempt} attempts: {_uv_error(result.tail)}"
            )
        time.sleep(request.install_backoff * 2 ** (attempt - 1))


def _uv_error(tail: list[str]) -> str:
    """What uv said went wrong: from its last ``error:`` line on (the
    resolver's reasons follow it), in one line."""
    starts = [n for n, line in enumerate(tail) if line.lstrip().startswith("error:")]
    said = [line.strip() for line in tail[starts[-1] if starts else -1 :] if line.strip()]
    return " ".join(said)[:600] or "see the log"


def top_level_modules(wheel: Path) -> list[str]:
    """The importable top-level names in a wheel: packages, modules and
    compiled extension modules."""
    names: set[str] = set()
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            first = member.split("/", 1)[0]
            if first.endswith((".dist-info", ".data")):
                continue
            if "/" in member and member.endswith("/__init__.py"):
                names.add(first)
            elif "/" not in member and member.endswith(".py"):
                names.add(member[:-3])
            elif "/" not in member and member.endswith((".so", ".pyd")):
                names.add(member.split(".", 1)[0])
            elif "/" in member and first.isidentifier() and member.endswith(".py"):
                names.add(first)  # namespace package
    modules = sorted(n for n in names if n.isidentifier())
    if not modules:
        raise StepFailed(f"{wheel.name} holds no importable module.")
    return modules
