"""Post-publication checks: each one a named result, pass or fail with the
reason, stored on the deployment (the release guide's list of things a
maintainer checks by hand after publishing)."""

from __future__ import annotations

import contextlib
import email.parser
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO

import requests
from django.conf import settings
from django.core.files.storage import storages
from packaging.utils import canonicalize_name
from readme_renderer import markdown, rst, txt

from releases.errors import StepFailed, TransientError
from releases.models import Artifact, Deployment
from releases.pipeline import runner
from releases.pipeline.context import JobContext

FILES_ON_INDEX = "files on the index"
INSTALLS = "installs in a clean environment"
DEPENDENCIES_RESOLVE = "dependencies resolve"
README_RENDERS = "README renders"
METADATA_MATCHES = "metadata matches"
PROJECT_PAGE = "project page answers"

ORDER = [FILES_ON_INDEX, INSTALLS, DEPENDENCIES_RESOLVE, README_RENDERS, METADATA_MATCHES, PROJECT_PAGE]


@dataclass(frozen=True)
class Outcome:
    passed: bool
    detail: str


@contextlib.contextmanager
def checked(deployment: Deployment, name: str, passed_detail: str = "") -> Iterator[None]:
    """Record check ``name`` as passed when the block ends, or failed with
    the reason when it raises (the exception goes on)."""
    from releases.services.supply import check_record

    started = time.monotonic()
    try:
        yield
    except (StepFailed, TransientError) as exc:
        check_record(deployment, name, passed=False, detail=str(exc), seconds=time.monotonic() - started)
        raise
    check_record(deployment, name, passed=True, detail=passed_detail, seconds=time.monotonic() - started)


def _timed(deployment: Deployment, name: str, check: Callable[[], Outcome | None]) -> Outcome | None:
    """Run ``check`` and store its outcome with the time it took (None: not applicable)."""
    from releases.services.supply import check_record

    started = time.monotonic()
    outcome = check()
    if outcome is not None:
        check_record(deployment, name, passed=outcome.passed, detail=outcome.detail, seconds=time.monotonic() - started)
    return outcome


def after_install_checks(ctx: JobContext, deployment: Deployment, venv_python: Path) -> list[str]:
    """The checks the install does not cover: README, metadata, project
    page. Each is stored; the failed ones are returned as "name: reason"."""
    ctx.step("post-publication checks")
    wheel = deployment.release.artifacts.filter(kind=Artifact.Kind.WHEEL).order_by("filename").first()
    if wheel is None:
        raise StepFailed("The release has no wheel to read its metadata from.")
    built = wheel_metadata(wheel)
    outcomes = {
        README_RENDERS: _timed(deployment, README_RENDERS, lambda: readme_check(built)),
        METADATA_MATCHES: _timed(
            deployment, METADATA_MATCHES, lambda: metadata_check(ctx, deployment, venv_python, built)
        ),
        PROJECT_PAGE: _timed(deployment, PROJECT_PAGE, lambda: project_page_check(deployment)),
    }
    failed = []
    for name, outcome in outcomes.items():
        if outcome is None:
            continue
        ctx.log.write(f"check {name}: {'passed' if outcome.passed else 'FAILED'}: {outcome.detail}")
        if not outcome.passed:
            failed.append(f"{name}: {outcome.detail}")
    return failed


def wheel_metadata(artifact: Artifact) -> Message:
    """The METADATA of a stored wheel (the bytes the index now serves)."""
    with storages["artifacts"].open(artifact.path, "rb") as handle:
        return read_wheel_metadata(handle, artifact.filename)


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


def metadata_check(ctx: JobContext, deployment: Deployment, venv_python: Path, built: Message) -> Outcome:
    """Name, version and Requires-Python of what was installed from the index
    against the release and the wheel the console built."""
    release = deployment.release
    result = runner.run(
        ctx,
        [str(venv_python), "-I", "-c", INSTALLED_METADATA, release.project.name],
        show=["python", "-c", f"importlib.metadata.distribution({release.project.name!r})"],
        check=False,
    )
    line = next((t for t in reversed(result.tail) if t.startswith("metadata ")), "")
    if result.returncode != 0 or not line:
        return Outcome(False, f"The installed {release.project.name} has no readable metadata.")
    installed = json.loads(line.removeprefix("metadata "))
    problems = []
    if canonicalize_name(installed["name"]) != canonicalize_name(release.project.name):
        problems.append(f"name is {installed['name']!r}, the project is {release.project.name!r}")
    if installed["version"] != release.version:
        problems.append(f"version is {installed['version']!r}, the release is {release.version!r}")
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


def project_page_check(deployment: Deployment) -> Outcome | None:
    """GET the environment's project page for this version (bounded retries
    for CDN lag); None when the environment has no project page."""
    template = deployment.environment.project_url_template
    if not template:
        return None
    release = deployment.release
    try:
        url = template.format(name=release.project.name, version=release.version)
    except (KeyError, IndexError, ValueError):
        return Outcome(False, f"The environment's project URL template {template!r} is not valid.")
    last = ""
    for attempt in range(settings.VERIFY_ATTEMPTS):
        if attempt:
            time.sleep(settings.VERIFY_BACKOFF * 2 ** (attempt - 1))
        try:
            response = requests.get(url, timeout=(5, 30), allow_redirects=True)
        except requests.RequestException as exc:
            last = f"{url} could not be reached ({type(exc).__name__})"
            continue
        if response.status_code == 200:
            return Outcome(True, f"{url} answered 200")
        last = f"{url} answered {response.status_code}"
    return Outcome(False, f"The project page does not answer: {last}.")
