"""A hostile package, released the way every package is, against the real
console: ``release_create --wait`` and ``publish --wait`` run by real
workers split by role (a builder without the token key ring, a publisher),
with the real sandbox, devpi, and either PostgreSQL + Redis or the embedded
default (``run_embedded``: SQLite and the filesystem broker in a var folder
of the test's own).

Its in-tree build back-end, its module (imported by the verify) and its
dependency (an sdist on the same index, built by the verify's install) each
try what such code did on an unsandboxed worker (tests/support/hostile.py)
and report it into the job log; every attempt must have been blocked. The
secrets they were after are in no log, in any encoding; the environments'
approvals and the credentials are unchanged; nothing of the package runs
on after its job; and an innocent project's cached build environment is
byte for byte what it was, and its next build byte for byte the build made
before the attack.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from releases.steps.build import BuildRequest, build_release
from releases.steps.runner import sha256_file
from releases.steps.workspace import Workspace
from tests.support.devpi import DevpiServer, free_port
from tests.support.hostile import (
    HostilePackage,
    digest_tree,
    encodings,
    hostile_dependency_sdist,
    hostile_package,
    probe_reports,
    reached,
    write_hostile_project,
)
from tests.support.sample import SampleRepo, git
from tests.support.worker import WorkerProcess, child_process_env

ROOT = Path(__file__).resolve().parent.parent
SECRET_NAMES = [
    "SECRET_KEY",
    "CONSOLE_TOKEN_KEYS",
    "AUDIT_CHAIN_KEYS",
    "AUDIT_CHECKPOINT_SIGNING_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "TWINE_PASSWORD",
]
# Where the hostile code runs, each reporting once.
EVERY_PLACE = {
    "backend-sdist",
    "backend-wheel",
    "import",
    "dependency-backend-wheel",
    "dependency-import",
}


# Skipped where bubblewrap cannot make its namespaces (a failure under CI=true: tests/ci_strict.py).
pytestmark = pytest.mark.usefixtures("sandbox_works")


@dataclass
class Console:
    """One running console: how to run its commands, its secrets, its processes."""

    env: dict[str, str]
    var_dir: Path
    worker_pids: Callable[[], list[int]]
    secrets: Callable[[], dict[str, str]]
    ports: dict[str, int] = field(default_factory=dict)

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def query(self, code: str) -> Any:
        """What ``code`` (Python, run by ``manage.py shell``) prints as JSON on its last line."""
        result = self.manage("shell", "-c", code)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.strip().splitlines()[-1])


def split_workers(logs: Path, queue: str) -> tuple[WorkerProcess, WorkerProcess]:
    """A builder without the token key ring and a publisher, on a queue of their own."""
    base = {**child_process_env(), "CELERY_QUEUE": queue}
    builder_env = {k: v for k, v in base.items() if k != "CONSOLE_TOKEN_KEYS"}
    builder = WorkerProcess(logs, "builder", env={**builder_env, "WORKER_ROLE": "builder"}, pool="prefork")
    publisher = WorkerProcess(logs, "publisher", env={**base, "WORKER_ROLE": "publisher"})
    return builder, publisher


@pytest.fixture
def postgres_console(transactional_db: None, tmp_path: Path) -> Iterator[Console]:
    """PostgreSQL and Redis, a builder and a publisher worker."""
    builder, publisher = split_workers(tmp_path, f"attack-{uuid.uuid4().hex[:8]}")
    env = {**publisher.env(), "WORKER_ROLE": "all"}
    builder.start()
    publisher.start()
    try:
        yield Console(
            env=env,
            var_dir=Path(settings.VAR_DIR),
            worker_pids=lambda: [builder.pid, publisher.pid, *_children(builder.pid)],
            secrets=lambda: {name: os.environ[name] for name in SECRET_NAMES if os.environ.get(name)},
            ports={"database": 5432, "redis": 6379},
        )
    finally:
        builder.stop()
        publisher.stop()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def embedded_env(var_dir: Path) -> dict[str, str]:
    """No servers and no secrets from the environment: the console falls back
    to SQLite, its own broker and the secrets it generates into var/."""
    dropped = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CONSOLE_TOKEN_KEYS", "AUDIT_CHAIN_KEYS"}
    dropped |= {"AUDIT_CHECKPOINT_SIGNING_KEY", "WORKER_ROLE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update({"CONSOLE_MODE": "embedded", "CONSOLE_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture
def embedded_console(tmp_path: Path) -> Iterator[Console]:
    """``manage.py run_embedded``: web server, builder, publisher, beat and its index."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env = embedded_env(var_dir)
    port, index_port = free_port(), free_port()
    log = tmp_path / "run_embedded.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_embedded", "--port", str(port), "--index-port", str(index_port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)

        def workers() -> list[int]:
            found = []
            for child in _children(process.pid):
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                if b" worker " in command:
                    found += [child, *_children(child)]
            return found

        def secrets() -> dict[str, str]:
            return dict(json.loads((var_dir / "embedded-secrets.json").read_text()))

        yield Console(
            env=env,
            var_dir=var_dir,
            worker_pids=workers,
            secrets=secrets,
            # PostgreSQL and Redis run on this host all the same: targets too.
            ports={"database": 5432, "redis": 6379, "web": port, "embedded index": index_port},
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def twine() -> Iterator[tuple[int, str]]:
    """A concurrent upload's twine, with a token in its environment: a
    stand-in process (its pid and the token), so that it surely runs
    while the hostile code looks for it."""
    password = "pypi-" + uuid.uuid4().hex * 2
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        env={"PATH": "/usr/bin:/bin", "TWINE_PASSWORD": password},
    )
    yield process.pid, password
    process.kill()
    process.wait()


def test_hostile_package_code_is_blocked_everywhere_with_postgresql_and_redis(
    postgres_console: Console, devpi: DevpiServer, tmp_path: Path, twine: tuple[int, str]
) -> None:
    attack(postgres_console, devpi, tmp_path, twine)


def test_hostile_package_code_is_blocked_everywhere_on_the_embedded_default(
    embedded_console: Console, devpi: DevpiServer, tmp_path: Path, twine: tuple[int, str]
) -> None:
    before = embedded_console.query(
        "import json; from releases.models import Environment; print(json.dumps(Environment.objects.get(name='pypi').required_approvals))"
    )
    attack(embedded_console, devpi, tmp_path, twine)
    after = embedded_console.query(
        "import json; from releases.models import Environment; print(json.dumps(Environment.objects.get(name='pypi').required_approvals))"
    )
    assert before == after == 1


def attack(console: Console, devpi: DevpiServer, tmp_path: Path, twine: tuple[int, str]) -> None:
    """The scenario of both tests; see the module's docstring."""
    suffix = uuid.uuid4().hex[:8]
    # 1. An innocent project, built before the attack: its files, its build environment.
    innocent = SampleRepo(tmp_path / "innocent", name=f"innocent-{suffix}")
    innocent.commit_version("1.0.0")
    flit_project(innocent, "v1.0.0")
    ok(console.manage("project_add", innocent.name, "--source", str(innocent.path)))
    built = ok(console.manage("release_create", innocent.name, "1.0.0", "--ref", "v1.0.0", "--wait"))
    innocent_files = file_digests(built.stdout)
    innocent_env = build_environment_of(innocent.name)
    env_digest = digest_tree(innocent_env)

    # 2. The environment the hostile package publishes to (its dependency is
    #    on the same index), and one that needs two approvals.
    account = devpi.new_index()
    guarded = devpi.new_index()
    token_file = tmp_path / "token"
    token_file.write_text(account.password)
    target = f"attack-{suffix}"
    ok(console.manage(
        "environment_add", target, "--upload-url", account.upload_url, "--index-url", account.simple_url,
        "--username", account.user, "--token-file", str(token_file),
    ))  # fmt: skip
    ok(console.manage(
        "environment_add", f"guarded-{suffix}", "--upload-url", guarded.upload_url, "--index-url", guarded.simple_url,
        "--approvals", "2",
    ))  # fmt: skip
    package = hostile_package(suffix)
    targets = hostile_targets(console, devpi, account.upload_url, innocent_env, package)
    twine_pid, twine_password = twine
    targets["worker_pids"].append(twine_pid)
    devpi.upload_raw(account, hostile_dependency_sdist(tmp_path / "dep", package, targets))
    repo = tmp_path / "hostile"
    write_hostile_project(repo, package, "1.0.0", targets)
    ok(console.manage("project_add", package.name, "--source", str(repo)))
    credentials_before = console.query(CREDENTIALS)

    # 3. The attack: the hostile package released and published as any other.
    released = ok(console.manage("release_create", package.name, "1.0.0", "--ref", "v1.0.0", "--wait"))
    published = ok(console.manage("publish", package.name, "1.0.0", "--to", target, "--wait"))
    assert "succeeded" in published.stdout, published.stdout
    assert "sha256:" in released.stdout

    # 4. Every place the package's code ran reported, and every attempt was blocked.
    jobs = console.query(JOBS.replace("PROJECT", package.name))
    lines = [line for job in jobs for line in job["log"]]
    reports = probe_reports(lines)
    own_env = {build_environment_of(package.name).name}
    assert set(reports) == EVERY_PLACE, "\n".join(line[:300] for line in lines)
    for where, report in reports.items():
        assert reached(report) == {}, (where, reached(report))
        for label, seen in listings(report).items():
            # The only names a folder shows are those on the way to the sandbox's own paths.
            assert set(seen) <= {"jobs", "build-envs"} | {n for n in seen if n.startswith("job-")} | own_env, (
                where,
                label,
                seen,
            )
            assert innocent_env.name not in seen and len([n for n in seen if n.startswith("job-")]) <= 1
        assert report["processes visible"] <= 6, (where, report)
        assert report["uid"] != 0, report
        for name in SECRET_NAMES:
            assert name not in report["environment names"]
        assert not any(name.startswith(("CONSOLE_", "DJANGO", "CELERY")) for name in report["environment names"])
    show = {where: {k: v for k, v in r.items() if k != "environment names"} for where, r in reports.items()}
    print(json.dumps(show, indent=1))
    backend, dependency = reports["backend-wheel"], reports["dependency-backend-wheel"]
    assert backend["read var secrets"].startswith("blocked FileNotFoundError")
    assert backend["read sqlite"].startswith("blocked FileNotFoundError")
    assert len(listings(backend)["list jobs"]) == 1  # its own job's folder, as a mount point
    assert backend["manage.py shell"].startswith("blocked CalledProcessError")
    assert backend["write innocent build environment"].startswith("blocked FileNotFoundError")
    assert backend["write console environment"].startswith("blocked OSError: [Errno 30] Read-only file system")
    for label, port in console.ports.items():
        assert backend[f"connect {label} (127.0.0.1:{port})"].startswith("blocked ConnectionRefusedError")
    # The dependency's build had network, to its index only, through the proxy.
    assert dependency["upload through the proxy"].startswith("blocked HTTPError: HTTP Error 403")
    assert dependency["tunnel to database"].startswith("blocked OSError: Tunnel connection failed: 403")
    assert dependency["index API through the proxy"].startswith("blocked HTTPError: HTTP Error 403")
    assert any(f"sandbox network: refused POST {account.upload_url}" in line for line in lines)
    # The build and the verify ran on the builder, the upload on the publisher.
    workers = {job["kind"]: job["worker"].split("@")[0] for job in jobs}
    assert workers == {"build": "builder", "upload": "publisher", "verify": "builder"}, workers

    # 5. What they were after is nowhere: not in the logs, not in the reasons, in no encoding.
    secrets = {**console.secrets(), "TWINE_PASSWORD": twine_password, "index token": account.password}
    everything = "\n".join(lines) + json.dumps(jobs)
    for name, value in secrets.items():
        for encoded in encodings(value):
            assert encoded not in everything, f"{name} leaked"
    assert console.query(CREDENTIALS) == credentials_before
    approvals = console.query(APPROVALS.replace("NAME", f"guarded-{suffix}"))
    assert approvals == 2

    # 6. Nothing of it runs on, and nothing it touched changed for the innocent project.
    assert processes_with(package.marker) == []
    assert digest_tree(innocent_env) == env_digest
    assert not (Path(settings.TOOL_CACHE_DIR) / "uv" / "zz_hostile.pth").exists()
    assert rebuild(innocent) == innocent_files


CREDENTIALS = (
    "import json; from releases.models import Credential; "
    "print(json.dumps(sorted((c.name, bytes(c.encrypted_value).hex()) for c in Credential.objects.all())))"
)
APPROVALS = (
    "import json; from releases.models import Environment; "
    "print(json.dumps(Environment.objects.get(name='NAME').required_approvals))"
)
JOBS = (
    "import json; from releases.models import Job; "
    "print(json.dumps([{'kind': j.kind, 'worker': j.worker, 'reason': j.reason, "
    "'log': list(j.lines.order_by('number').values_list('text', flat=True))} "
    "for j in Job.objects.filter(release__project__name='PROJECT').order_by('pk')]))"
)


def flit_project(repo: SampleRepo, tag: str) -> None:
    """Build ``repo`` with flit_core, whose sdists, like its wheels, take
    their times from SOURCE_DATE_EPOCH (setuptools' sdists record the
    checkout's file times: no two of its sdists are the same bytes), and tag it."""
    pyproject = repo.path / "pyproject.toml"
    text = pyproject.read_text().replace('requires = ["setuptools>=61"]', 'requires = ["flit_core>=3.9,<4"]')
    pyproject.write_text(text.replace('"setuptools.build_meta"', '"flit_core.buildapi"'))
    git(repo.path, "commit", "--quiet", "-am", "built with flit_core")
    git(repo.path, "tag", tag)


def listings(report: dict[str, Any]) -> dict[str, list[str]]:
    """The folders the hostile code could list, and what it saw in each."""
    return {
        k: json.loads(v.removeprefix("sees "))
        for k, v in report.items()
        if k.startswith("list ") and v.startswith("sees ")
    }


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result


def file_digests(output: str) -> dict[str, str]:
    """The files and sha256 that ``release_create --wait`` printed."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith("sha256:"):
            found[parts[0]] = parts[3].removeprefix("sha256:")
    assert found, output
    return found


def build_environment_of(project: str) -> Path:
    root = Path(settings.TOOL_CACHE_DIR) / "build-envs"
    (folder,) = [p.parent for p in root.glob("*/ready.json") if json.loads(p.read_text())["project"] == project]
    return folder


def hostile_targets(
    console: Console, devpi: DevpiServer, upload_url: str, innocent_env: Path, package: HostilePackage
) -> dict[str, Any]:
    var = console.var_dir
    tool_cache = Path(settings.TOOL_CACHE_DIR)
    (site_packages,) = innocent_env.glob("lib/python*/site-packages")
    (console_site,) = Path(sys.prefix).glob("lib/python*/site-packages")
    return {
        "secret_names": SECRET_NAMES,
        "worker_pids": console.worker_pids(),
        "files": {
            "var secrets": str(var / "embedded-secrets.json"),
            "sqlite": str(var / "console.sqlite3"),
            "settings.py": str(ROOT / "console" / "settings.py"),
            "manage.py": str(ROOT / "manage.py"),
        },
        "folders": {
            "var": str(var),
            "jobs": str(var / "jobs"),
            "artifacts": str(var / "artifacts"),
            "broker": str(var / "broker"),
            "tool cache": str(tool_cache),
            "build environments": str(tool_cache / "build-envs"),
        },
        "manage": str(ROOT / "manage.py"),
        "sqlite": str(var / "console.sqlite3"),
        "ports": {**console.ports, "index": devpi.port},
        "upload_url": upload_url,
        "index_api": f"{devpi.url}/+api",
        "tunnels": {
            "database": "127.0.0.1:5432",
            "redis": "127.0.0.1:6379",
            "redis by name": "localhost:6379",
            "metadata service": "169.254.169.254:80",
        },
        "writes": {
            "innocent build environment": str(site_packages / "zz_hostile.pth"),
            "uv cache": str(tool_cache / "uv" / "zz_hostile.pth"),
            "console environment": str(console_site / "zz_hostile.pth"),
            "system": "/usr/lib/zz_hostile.pth",
        },
        "marker": package.marker,
    }


def processes_with(marker: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                command = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in command:
                found.append(f"{entry.name}: {command!r}")
    return found


class ListLog:
    """A job log kept in memory, for a build run by the build step itself."""

    def __init__(self) -> None:
        self.lost = threading.Event()
        self.full = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(text.splitlines())

    def write_lines(self, lines: list[str]) -> None:
        self.lines.extend(lines)


def rebuild(repo: SampleRepo) -> dict[str, str]:
    """The innocent project's next build of the same commit: the build step
    itself (a release is built once, so not through a new release), with
    the same cached build environment; its files' sha256."""
    workdir = Path(settings.JOB_WORK_ROOT) / f"job-rebuild-{uuid.uuid4().hex[:8]}"
    ws = Workspace(job_id=0, workdir=workdir, log=ListLog())
    workdir.mkdir(parents=True, mode=0o700)
    (workdir / "home").mkdir()
    ws.private.mkdir(mode=0o700)
    try:
        output = build_release(
            ws, BuildRequest(project=repo.name, version="1.0.0", source=str(repo.path), ref="v1.0.0")
        )
        assert any(line.startswith("build environment: cached") for line in ws.log.lines), ws.log.lines  # type: ignore[attr-defined]
        return {path.name: sha256_file(path) for path in output.files}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(ws.private, ignore_errors=True)
