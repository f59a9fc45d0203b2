"""Post-publication checks: each one a named result, pass or fail with the
reason (the release guide's list of things a maintainer checks by hand
after publishing); the services store them on the deployment."""

from __future__ import annotations

import contextlib
import email.parser
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import IO

from packaging.utils import canonicalize_name
from readme_renderer import markdown, rst, txt

from releases.clients.http import RetryPolicy
from releases.clients.project_page import project_page
from releases.errors import StepFailed, TransientError
from releases.steps import runner
from releases.steps.sandbox import NO_NETWORK
from releases.steps.workspace import Workspace

FILES_ON_INDEX = "files on the index"
INSTALLS = "installs in a clean environment"
DEPENDENCIES_RESOLVE = "dependencies resolve"
README_RENDERS = "README renders"
METADATA_MATCHES = "metadata matches"
PROJECT_PAGE = "project page answers"
PROVENANCE = "provenance"

ORDER = [FILES_ON_INDEX, INSTALLS, DEPENDENCIES_RESOLVE, README_RENDERS, METADATA_MATCHES, PROJECT_PAGE, PROVENANCE]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str
    seconds: float


@dataclass
class Checks:
    """The checks of one verify, in the order they ran; the services store them."""

    done: list[CheckOutcome] = field(default_factory=list)

    def add(self, name: str, outcome: Outcome, seconds: float) -> None:
        self.done.append(CheckOutcome(name, outcome.passed, outcome.detail, round(seconds, 3)))

    @contextlib.contextmanager
    def checked(self, name: str, passed_detail: str = "") -> Iterator[None]:
        """Note check ``name`` as passed when the block ends, or failed with
        the reason when it raises (the exception goes on)."""
        started = time.monotonic()
        try:
            yield
        except (StepFailed, TransientError) as exc:
            self.add(name, Outcome(False, str(exc)), time.monotonic() - started)
            raise
        self.add(name, Outcome(True, passed_detail), time.monotonic() - started)

    def timed(self, name: str, check: Callable[[], Outcome | None]) -> Outcome | None:
        """Run ``check`` and note its outcome with the time it took (None: not applicable)."""
        started = time.monotonic()
        outcome = check()
        if outcome is not None:
            self.add(name, outcome, time.monotonic() - started)
        return outcome


def after_install_checks(
    ws: Workspace,
    checks: Checks,
    *,
    project: str,
    version: str,
    wheel: Path,
    venv_python: Path,
    project_page_url: str,
    page_policy: RetryPolicy,
) -> list[str]:
    """The checks the install does not cover: README, metadata, project
    page (when the environment has one). The failed ones are returned as
    "name: reason"."""
    ws.step("post-publication checks")
    with wheel.open("rb") as handle:
        built = read_wheel_metadata(handle, wheel.name)
    outcomes = {
        README_RENDERS: checks.timed(README_RENDERS, lambda: readme_check(built)),
        METADATA_MATCHES: checks.timed(
            METADATA_MATCHES, lambda: metadata_check(ws, project, version, venv_python, built)
        ),
        PROJECT_PAGE: checks.timed(PROJECT_PAGE, lambda: project_page_check(project_page_url, page_policy)),
    }
    failed = []
    for name, outcome in outcomes.items():
        if outcome is None:
            continue
        ws.log.write(f"check {name}: {'passed' if outcome.passed else 'FAILED'}: {outcome.detail}")
        if not outcome.passed:
            failed.append(f"{name}: {outcome.detail}")
    return failed


def read_wheel_metadata(handle: IO[bytes], filename: str) -> Message:
    with zipfile.ZipFile(handle) as archive:
        names = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if not names:
            raise StepFailed(f"{filename} has no .dist-info/METADATA.")
        text = archive.read(names[0]).decode("utf-8", errors="replace")
    return email.parser.Parser().parsestr(text)


def _description(metadata: Message) -> str:
    body = metadata.get_payload()
    if isinstance(body, str) and body.strip():
        return body
    return str(metadata.get("Description", ""))


def readme_check(metadata: Message) -> Outcome:
    """Render the long description the way PyPI does (readme_renderer, by
    its declared content type; reStructuredText when none is declared)."""
    declared = str(metadata.get("Description-Content-Type", "") or "text/x-rst")
    content_type, _, params = declared.partition(";")
    content_type = content_type.strip().lower()
    description = _description(metadata)
    if not description.strip() or description.strip() == "UNKNOWN":
        return Outcome(False, "The package has no long description (README) for the project page.")
    warnings = io.StringIO()
    if content_type == "text/x-rst":
        rendered = rst.render(description, stream=warnings)
    elif content_type == "text/markdown":
        variant = "GFM"
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "variant" and value.strip():
                variant = value.strip()
        rendered = markdown.render(description, variant=variant)
    elif content_type == "text/plain":
        rendered = txt.render(description)
    else:
        return Outcome(False, f"PyPI does not render the README's content type {declared!r}.")
    if rendered is None:
        message = warnings.getvalue().strip() or "the renderer gave no reason"
        return Outcome(False, f"The README ({content_type}) does not render on PyPI: {message}")
    return Outcome(True, f"{content_type}, {len(rendered)} characters of HTML")


INSTALLED_METADATA = (
    "import importlib.metadata as m, json, sys\n"
    "d = m.distribution(sys.argv[1])\n"
    "print('metadata ' + json.dumps({'name': d.metadata['Name'], 'version': d.version,"
    " 'requires_python': d.metadata.get('Requires-Python') or ''}))"
)


def metadata_check(ws: Workspace, project: str, version: str, venv_python: Path, built: Message) -> Outcome:
    """Name, version and Requires-Python of what was installed from the index
    against the release and the wheel the console built."""
    result = runner.run(
        ws,
        [str(venv_python), "-I", "-c", INSTALLED_METADATA, project],
        show=["python", "-c", f"importlib.metadata.distribution({project!r})"],
        check=False,
        sandbox=NO_NETWORK,
    )
    line = next((t for t in reversed(result.tail) if t.startswith("metadata ")), "")
    if result.returncode != 0 or not line:
        return Outcome(False, f"The installed {project} has no readable metadata.")
    installed = json.loads(line.removeprefix("metadata "))
    problems = []
    if canonicalize_name(installed["name"]) != canonicalize_name(project):
        problems.append(f"name is {installed['name']!r}, the project is {project!r}")
    if installed["version"] != version:
        problems.append(f"version is {installed['version']!r}, the release is {version!r}")
    expected_python = str(built.get("Requires-Python", "") or "")
    if installed["requires_python"] != expected_python:
        problems.append(
            f"Requires-Python is {installed['requires_python']!r}, the built wheel says {expected_python!r}"
        )
    if problems:
        return Outcome(False, "The installed metadata does not match: " + "; ".join(problems) + ".")
    return Outcome(
        True,
        f"{installed['name']} {installed['version']}, Requires-Python {expected_python or '(none)'}",
    )


def project_page_check(url: str, policy: RetryPolicy) -> Outcome | None:
    """GET the environment's project page for this version, waiting out CDN
    lag by ``policy``; None when the environment has no project page."""
    if not url:
        return None
    answer = project_page(url, policy=policy)
    return Outcome(answer.ok, answer.detail if answer.ok else f"The project page does not answer: {answer.detail}.")
