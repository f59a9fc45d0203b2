"""What package code leaves in its job's folder is hostile, and the worker
(root) reads it without following a link; package code runs only in a
working sandbox, or under the loud opt-out, which every page then shows."""

from __future__ import annotations

import os
import shutil
import stat
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from releases.errors import StepFailed
from releases.steps import runner, sandbox, untrusted
from releases.steps.build import BuildRequest, build_release
from releases.steps.sandbox import NO_NETWORK, SandboxStatus
from releases.steps.workspace import Workspace
from tests.support.people import make_user
from tests.support.sample import SampleRepo, git


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file the package would like to have stored as its wheel."""
    path = tmp_path / "secrets.json"
    path.write_text('{"SECRET_KEY": "do-not-ship"}')
    path.chmod(0o600)
    return path


def test_a_link_to_a_secret_is_not_read_where_a_build_output_should_be(tmp_path: Path, secret: Path) -> None:
    (tmp_path / "job" / "dist" / "wheel").mkdir(parents=True)
    (tmp_path / "job" / "dist" / "wheel" / "x-1.0-py3-none-any.whl").symlink_to(secret)

    assert untrusted.regular_files(tmp_path / "job", "dist/wheel") == []
    with pytest.raises(StepFailed, match="cannot be read"):
        untrusted.read_file(tmp_path / "job", "dist/wheel/x-1.0-py3-none-any.whl", limit=1 << 20)


def test_a_linked_folder_on_the_way_is_not_followed(tmp_path: Path, secret: Path) -> None:
    (tmp_path / "job" / "dist").mkdir(parents=True)
    (tmp_path / "job" / "dist" / "wheel").symlink_to(secret.parent)

    assert untrusted.regular_files(tmp_path / "job", "dist/wheel") == []
    with pytest.raises(StepFailed, match="is not a folder the job made"):
        untrusted.copy_file(tmp_path / "job", f"dist/wheel/{secret.name}", tmp_path / "out", limit=1 << 20)
    assert not (tmp_path / "out").exists()


def test_a_fifo_or_a_file_too_large_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "never-ends")
    (tmp_path / "large").write_bytes(b"x" * 2048)

    with pytest.raises(StepFailed, match="not a regular file"):
        untrusted.read_file(tmp_path, "never-ends", limit=1 << 20)
    with pytest.raises(StepFailed, match="larger than 1,024 bytes"):
        untrusted.copy_file(tmp_path, "large", tmp_path / "copy", limit=1024)
    assert not (tmp_path / "copy").exists()
    assert stat.S_ISFIFO(os.stat(tmp_path / "never-ends").st_mode)


class ListLog:
    def __init__(self) -> None:
        self.lost = threading.Event()
        self.full = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(text.splitlines())

    def write_lines(self, lines: list[str]) -> None:
        self.lines.extend(lines)


@pytest.fixture
def ws() -> Iterator[Workspace]:
    workdir = Path(settings.JOB_WORK_ROOT) / f"job-untrusted-{uuid.uuid4().hex[:8]}"
    workdir.mkdir(parents=True, mode=0o700)
    (workdir / "home").mkdir()
    workspace = Workspace(job_id=0, workdir=workdir, log=ListLog())
    workspace.private.mkdir(mode=0o700)
    yield workspace
    for folder in (workdir, workspace.private):
        shutil.rmtree(folder, ignore_errors=True)


LINKING_BACKEND = """\
import os, tarfile

def build_sdist(directory, config_settings=None):
    name = "linker-1.0.0.tar.gz"
    # A real sdist at the secret's path in the sandbox's own /tmp, for uv to
    # find; and a link to that path where the sdist should be: outside the
    # sandbox, the same path is the worker's secret.
    os.makedirs(os.path.dirname({target!r}), exist_ok=True)
    with tarfile.open({target!r}, "w:gz"):
        pass
    os.symlink({target!r}, os.path.join(directory, name))
    return name
"""


def test_a_build_that_leaves_a_link_for_its_output_stores_nothing(ws: Workspace, tmp_path: Path, secret: Path) -> None:
    repo = SampleRepo(tmp_path / "linker", name="linker")
    repo.commit_version("1.0.0")
    (repo.path / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "linker_backend"\nbackend-path = ["."]\n'
    )
    (repo.path / "linker_backend.py").write_text(LINKING_BACKEND.format(target=str(secret)))
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "--quiet", "-m", "a back-end that links")
    git(repo.path, "tag", "v1.0.0")

    with pytest.raises(StepFailed) as failed:
        build_release(ws, BuildRequest(project="linker", version="1.0.0", source=str(repo.path), ref="v1.0.0"))

    assert str(failed.value) == "uv build made [] in dist/sdist; expected one file."
    assert "do-not-ship" not in str(failed.value) + "\n".join(ws.log.lines)  # type: ignore[attr-defined]
    assert list(ws.private.iterdir()) == []


def test_package_code_is_refused_where_the_sandbox_does_not_work(ws: Workspace, monkeypatch) -> None:
    # This host's sandbox works: the probe is told otherwise, as on a host
    # whose kernel refuses user namespaces.
    monkeypatch.setattr(sandbox, "sandbox_status", lambda: SandboxStatus(False, "user namespaces are disabled"))

    with pytest.raises(StepFailed) as refused:
        runner.run(ws, ["true"], sandbox=NO_NETWORK)

    assert str(refused.value) == (
        "Package code runs only in a sandbox, and it does not work on this worker: user namespaces are disabled"
    )


def test_under_the_opt_out_package_code_runs_as_it_is_and_the_log_says_so(ws: Workspace, settings) -> None:
    settings.UNSAFE_UNSANDBOXED_BUILDS = True
    # It sees the worker's own processes: no PID namespace of its own.
    result = runner.run(ws, ["test", "-e", f"/proc/{os.getpid()}/environ"], sandbox=NO_NETWORK, check=False)

    assert (
        "sandbox: OFF (CONSOLE_UNSAFE_UNSANDBOXED_BUILDS): package code runs with the worker's rights" in ws.log.lines
    )  # type: ignore[attr-defined]
    assert result.returncode == 0


def test_every_page_says_so_while_the_opt_out_is_on(db, settings) -> None:
    client = Client()
    client.force_login(make_user(f"viewer-{uuid.uuid4().hex[:6]}"))
    warning = "Package code runs outside the sandbox."
    assert warning not in client.get("/").content.decode()

    settings.UNSAFE_UNSANDBOXED_BUILDS = True
    for page in ("/", "/history/", "/approvals/"):
        assert warning in client.get(page).content.decode(), page
    assert warning in Client().get("/accounts/login/").content.decode()


SHADOWING_SETUP = """\
import os
from setuptools import setup

# The job's folder (HOME's parent) is where twine check starts: a twine of
# the package's own there would say every file passes.
job = os.path.dirname(os.environ["HOME"])
os.makedirs(os.path.join(job, "twine"), exist_ok=True)
for name in ("__init__.py", "__main__.py"):
    with open(os.path.join(job, "twine", name), "w") as handle:
        handle.write("print('shadowed twine: PASSED')\\n")
setup()
"""


def test_a_twine_the_package_leaves_in_the_job_s_folder_does_not_stand_in_for_the_console_s(
    ws: Workspace, tmp_path: Path
) -> None:
    repo = SampleRepo(tmp_path / "shadow", name="shadow")
    repo.commit_version("1.0.0")
    (repo.path / "setup.py").write_text(SHADOWING_SETUP)
    git(repo.path, "add", "-A")
    git(repo.path, "commit", "--quiet", "-m", "a setup.py that leaves a twine behind")
    git(repo.path, "tag", "v1.0.0")

    build_release(ws, BuildRequest(project="shadow", version="1.0.0", source=str(repo.path), ref="v1.0.0"))

    lines = ws.log.lines  # type: ignore[attr-defined]
    assert not any("shadowed twine" in line for line in lines)
    assert sum(1 for line in lines if line.endswith("PASSED")) == 2, lines
