"""The sandbox for package code, attacked by a package's own code.

A hostile script runs through the real sandbox (bubblewrap, prlimit, the
allow-listing proxy) on a host with the real PostgreSQL and Redis on
loopback and a real devpi index, tries what such code tried on the worker,
and reports what it saw; each attempt must have failed. Then the allowed
paths: an install from the index and an isolated build, through the proxy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from releases.errors import StepFailed
from releases.steps.netproxy import NetworkAllowance, ProxyEvent, SandboxProxy
from releases.steps.sandbox import Limits, SandboxPolicy, check_policy, sandboxed
from tests.support.devpi import DevpiServer, IndexAccount

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


# Skipped where bubblewrap cannot make its namespaces (a failure under CI=true: tests/ci_strict.py).
pytestmark = pytest.mark.usefixtures("sandbox_works")


@dataclass
class Outcome:
    returncode: int
    output: str
    network: list[str]
    stopped: str | None
    seconds: float

    def result(self) -> dict[str, object]:
        """The hostile script's report: its last line."""
        line = next(line for line in reversed(self.output.splitlines()) if line.startswith("RESULT "))
        return dict(json.loads(line.removeprefix("RESULT ")))


def run_sandboxed(policy: SandboxPolicy, argv: list[str], *, timeout: float = 60) -> Outcome:
    """Run ``argv`` the way the tool runner does: the sandbox's argument
    list, its descriptors, the watchdog's stop killing the process group."""
    lines: list[str] = []
    stopped: list[str] = []
    started = time.monotonic()
    with sandboxed(policy, argv, report=lines.append) as command:
        process = subprocess.Popen(
            command.argv,
            env=command.env,
            cwd=command.cwd,
            pass_fds=command.pass_fds,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def stop(why: str) -> None:
            stopped.append(why)
            os.killpg(process.pid, signal.SIGKILL)

        command.watch(process.pid, stop)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(f"ran longer than {timeout} s")
            output, _ = process.communicate()
    return Outcome(
        process.returncode,
        output.decode(errors="replace"),
        lines,
        stopped[0] if stopped else None,
        time.monotonic() - started,
    )


def make_job_folder(name: str) -> Path:
    folder = Path(settings.JOB_WORK_ROOT) / f"job-{name}-{uuid.uuid4().hex[:8]}"
    (folder / "home").mkdir(parents=True)
    return folder


@pytest.fixture
def job() -> Iterator[Path]:
    folder = make_job_folder("sandbox")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def tool_env(job: Path) -> dict[str, str]:
    """What the runner gives a tool: nothing of the worker's own environment."""
    return {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": str(job / "home"),
        "TMPDIR": str(job),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "UV_CACHE_DIR": str(job / "uv-cache"),
        "UV_NO_CONFIG": "1",
        "UV_NO_PROGRESS": "1",
        "UV_SYSTEM_CERTS": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "NO_COLOR": "1",
    }


HOSTILE = textwrap.dedent(
    """\
    import errno, glob, http.client, json, os, socket, sys, urllib.error, urllib.request
    plan = json.loads(sys.argv[1])
    seen = {}

    def attempt(what, action):
        try:
            seen[what] = "ok: " + str(action())[:300]
        except Exception as exc:
            seen[what] = "failed: " + type(exc).__name__ + ": " + str(exc)[:300]

    def read(path):
        with open(path, "rb") as handle:
            return handle.read(4096).decode(errors="replace")

    # Processes: the worker's environment, every environment there is.
    seen["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    seen["cmdlines"] = [read(f"/proc/{p}/cmdline").replace("\\0", " ") for p in seen["pids"]
                        if os.path.exists(f"/proc/{p}/cmdline")]
    attempt("parent environ", lambda: read(f"/proc/{os.getppid()}/environ"))
    attempt("worker environ", lambda: read(f"/proc/{plan['worker_pid']}/environ"))
    environs = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            environs.append(read(path))
        except OSError:
            pass
    seen["environs"] = environs
    seen["env"] = dict(os.environ)
    # Files: the var folder's secrets, the database file, another job, the source tree.
    for path in plan["read"]:
        attempt("read " + path, lambda: read(path))
    attempt("write pth", lambda: open(plan["pth"], "w").write("import os; os.system('id')\\n"))
    # Services on loopback, straight.
    for port in plan["ports"]:
        def connect(port=port):
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return "connected"
        attempt(f"connect {port}", connect)
    # Through the proxy: an upload, and a tunnel to the database.
    request = urllib.request.Request(plan["upload_url"], data=b":action=file_upload", method="POST")
    try:
        urllib.request.urlopen(request, timeout=10)
        seen["upload"] = "accepted"
    except urllib.error.HTTPError as exc:
        seen["upload"] = f"{exc.code} {exc.read().decode().strip()}"
    except OSError as exc:
        seen["upload"] = f"failed: {exc}"
    proxy = os.environ["HTTP_PROXY"].removeprefix("http://")
    for target in plan["tunnels"]:
        host, port = target.rsplit(":", 1)
        tunnel = http.client.HTTPConnection(*proxy.split(":"), timeout=10)
        tunnel.set_tunnel(host, int(port))
        attempt("tunnel " + target, lambda: tunnel.connect() or "tunnel open")
    print("RESULT " + json.dumps(seen))
    """
)


@pytest.fixture
def read_only_build_env() -> Iterator[Path]:
    """A project's cached build environment, as build_env makes them."""
    folder = Path(settings.TOOL_CACHE_DIR) / "build-envs" / f"sandbox-test-{uuid.uuid4().hex[:8]}"
    site = folder / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "setuptools.py").write_text("# the back-end\n")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_hostile_package_code_reaches_no_secret_no_service_and_no_other_job(
    job: Path, read_only_build_env: Path, devpi: DevpiServer, index_account: IndexAccount
) -> None:
    # What the attacker is after, all present on the host while it runs.
    secrets_file = Path(settings.VAR_DIR) / "embedded-secrets.json"
    if not secrets_file.exists():
        secrets_file.write_text(json.dumps({"SECRET_KEY": "var-folder-secret-" + uuid.uuid4().hex}))
    secrets_text = secrets_file.read_text()
    other_job = make_job_folder("other")
    (other_job / "dist.txt").write_text("another project's files")
    twine_password = "pypi-" + uuid.uuid4().hex
    twine = subprocess.Popen(["sleep", "60"], env={"PATH": "/usr/bin:/bin", "TWINE_PASSWORD": twine_password})
    assert _listening(5432) and _listening(6379)
    worker_secrets = [os.environ[name] for name in ("SECRET_KEY", "CONSOLE_TOKEN_KEYS", "DATABASE_URL", "REDIS_URL")]
    pth = read_only_build_env / "lib" / "python3.11" / "site-packages" / "evil.pth"
    plan = {
        "worker_pid": os.getpid(),
        "read": [
            str(secrets_file),
            str(Path(settings.VAR_DIR) / "console.sqlite3"),
            str(other_job / "dist.txt"),
            str(ROOT / "console" / "settings.py"),
        ],
        "pth": str(pth),
        "ports": [5432, 6379],
        "upload_url": index_account.upload_url,
        "tunnels": ["127.0.0.1:5432", "127.0.0.1:6379", "localhost:6379"],
    }
    script = job / "hostile.py"
    script.write_text(HOSTILE)
    index_root = index_account.upload_url
    allowance = NetworkAllowance(connect=frozenset({"pypi.org:443", "localhost:6379"}), http_prefixes=(index_root,))
    try:
        outcome = run_sandboxed(
            SandboxPolicy.for_job(job, tool_env(job), read_only=(read_only_build_env,), network=allowance),
            [sys.executable, str(script), json.dumps(plan)],
        )
    finally:
        twine.kill()
        twine.wait()
        shutil.rmtree(other_job, ignore_errors=True)
    assert outcome.returncode == 0, outcome.output
    seen = outcome.result()

    # No other process: the sandbox's own PID namespace holds bwrap, the
    # relay and the script, nothing of the worker's, nor the twine.
    assert len(seen["pids"]) == len(seen["cmdlines"]) <= 5
    assert all("hostile.py" in line for line in seen["cmdlines"]), seen["cmdlines"]
    everything_read = json.dumps(seen)
    for secret in [*worker_secrets, twine_password, secrets_text]:
        assert secret not in everything_read
    assert seen["worker environ"].startswith("failed: FileNotFoundError")
    # Exactly the environment the runner gave, and the proxy.
    assert set(seen["env"]) <= set(tool_env(job)) | {
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY", "no_proxy", "PWD",
    }  # fmt: skip
    for name in ("SECRET_KEY", "DATABASE_URL", "CONSOLE_TOKEN_KEYS", "REDIS_URL", "TWINE_PASSWORD"):
        assert name not in seen["env"]

    # The var folder, the database file, another job and the source tree are not there.
    for path in plan["read"]:
        assert seen["read " + path].startswith("failed: FileNotFoundError"), (path, seen["read " + path])
    # The build environment is read-only, and stays as it was.
    assert seen["write pth"].startswith("failed: OSError: [Errno 30] Read-only file system")
    assert not pth.exists()

    # PostgreSQL and Redis are not on the sandbox's loopback.
    assert seen["connect 5432"].startswith("failed: ConnectionRefusedError")
    assert seen["connect 6379"].startswith("failed: ConnectionRefusedError")

    # No upload passes the proxy, and the index never heard of one.
    assert seen["upload"].startswith("403 sandbox network: refused POST"), seen["upload"]
    assert index_account.user in seen["upload"]
    assert devpi.upload_requests(index_account) == 0
    # No tunnel to loopback, not even through a name that is allowed.
    assert "403 Forbidden" in seen["tunnel 127.0.0.1:5432"]
    assert "403 Forbidden" in seen["tunnel 127.0.0.1:6379"]
    assert "403 Forbidden" in seen["tunnel localhost:6379"]
    assert f"sandbox network: refused POST {index_account.upload_url}: only GET and HEAD pass" in " ".join(
        outcome.network
    )
    assert "sandbox network: refused CONNECT 127.0.0.1:5432: not an allowed host:port" in outcome.network
    assert "sandbox network: refused CONNECT localhost:6379: localhost resolves to the internal address" in (
        " ".join(outcome.network)
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_fork_bomb_is_stopped_with_a_reason_and_the_host_stays_usable(job: Path) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    policy = SandboxPolicy.for_job(job, tool_env(job), limits=Limits(processes=100))
    started = time.monotonic()
    outcome = run_sandboxed(policy, [sys.executable, "-c", bomb], timeout=30)
    assert outcome.stopped is not None, outcome.output
    assert "it kept starting processes" in outcome.stopped and "limit of 100" in outcome.stopped
    assert time.monotonic() - started < 10
    # The host still starts processes at once.
    before = time.monotonic()
    subprocess.run(["true"], check=True)
    assert time.monotonic() - before < 1


def test_a_memory_hog_gets_a_memory_error(job: Path) -> None:
    hog = "try:\n    b = bytearray(3 << 30)\n    print('allocated')\nexcept MemoryError:\n    print('MemoryError')\n"
    policy = SandboxPolicy.for_job(job, tool_env(job), limits=Limits(address_space_bytes=1 << 30))
    outcome = run_sandboxed(policy, [sys.executable, "-c", hog])
    assert outcome.output.strip() == "MemoryError"


def _processes_with(marker: str, *, name: str | None = None) -> list[int]:
    """The host's processes with ``marker`` in their command line (and
    called ``name``), wherever they are."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if marker.encode() not in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                    continue
                if name is None or Path(f"/proc/{entry.name}/comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_process_left_behind_dies_with_the_command(job: Path) -> None:
    marker = f"{time.time() % 1000:.3f}7"
    daemon = textwrap.dedent(
        f"""\
        import os, subprocess, sys
        if os.fork() == 0:
            os.setsid()
            subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1); open('late.txt', 'w').write('x')"])
            os._exit(0)
        print("left them behind")
        """
    )
    outcome = run_sandboxed(SandboxPolicy.for_job(job, tool_env(job)), [sys.executable, "-c", daemon])
    assert "left them behind" in outcome.output
    assert _processes_with(marker) == []
    time.sleep(1.5)
    assert not (job / "late.txt").exists()


WORKER = textwrap.dedent(
    """\
    import django, os, subprocess, sys, time
    django.setup()
    from pathlib import Path
    from releases.steps.sandbox import SandboxPolicy, sandboxed
    job = Path(sys.argv[1])
    policy = SandboxPolicy.for_job(job, {"PATH": "/usr/bin:/bin", "HOME": str(job)})
    with sandboxed(policy, ["sleep", sys.argv[2]], report=print) as command:
        process = subprocess.Popen(command.argv, env=command.env, cwd=command.cwd, pass_fds=command.pass_fds)
        command.watch(process.pid, print)
        print("running", flush=True)
        process.wait()
    """
)


def test_the_sandbox_dies_when_the_worker_is_killed(job: Path) -> None:
    marker = f"{time.time() % 1000:.3f}9"
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(job), marker],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "running"
    # Killed once the command runs (bwrap binds itself to its parent's life
    # only after it has made the sandbox: a few milliseconds after its start).
    deadline = time.monotonic() + 5
    while not _processes_with(marker, name="sleep") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _processes_with(marker, name="sleep"), "the sandboxed sleep never started"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 3
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = _processes_with(marker)
    assert left == [], "; ".join(" ".join(Path(f"/proc/{pid}/status").read_text().split("\n")[:9]) for pid in left)


def tiny_wheel(folder: Path, name: str) -> Path:
    """A pure-Python wheel, written by hand (no build back-end involved)."""
    files = {
        f"{name}/__init__.py": b"ANSWER = 42\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
        f"{name}-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{name}-1.0.dist-info/RECORD", record + f"{name}-1.0.dist-info/RECORD,,\n")
    return wheel


def test_uv_installs_from_the_index_through_the_proxy(
    job: Path, devpi: DevpiServer, index_account: IndexAccount, tmp_path: Path
) -> None:
    devpi.upload_raw(index_account, tiny_wheel(tmp_path, "sandbox_probe"))
    allowance = NetworkAllowance.for_indexes([index_account.simple_url])
    venv = job / "venv"
    policy = SandboxPolicy.for_job(job, tool_env(job), network=allowance)
    made = run_sandboxed(
        policy, [str(BIN / "uv"), "venv", "--quiet", "--no-config", "--python", sys.executable, str(venv)]
    )
    assert made.returncode == 0, made.output
    uv_install = [str(BIN / "uv"), "pip", "install", "--no-config", "--python", str(venv / "bin" / "python")]
    installed = run_sandboxed(policy, [*uv_install, "--index-url", index_account.simple_url, "sandbox-probe"])
    assert installed.returncode == 0, installed.output
    assert f"sandbox network: allowed GET {index_account.simple_url}sandbox-probe/" in installed.network
    imported = run_sandboxed(
        policy, [str(venv / "bin" / "python"), "-c", "import sandbox_probe; print(sandbox_probe.ANSWER)"]
    )
    assert imported.output.strip() == "42"


def test_pip_downloads_from_the_index_through_the_proxy(
    job: Path, devpi: DevpiServer, index_account: IndexAccount, tmp_path: Path
) -> None:
    devpi.upload_raw(index_account, tiny_wheel(tmp_path, "sandbox_probe"))
    policy = SandboxPolicy.for_job(job, tool_env(job), network=NetworkAllowance.for_indexes([index_account.simple_url]))
    pip = [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--disable-pip-version-check"]
    outcome = run_sandboxed(
        policy, [*pip, "--no-deps", "-d", str(job / "dl"), "-i", index_account.simple_url, "sandbox-probe"]
    )
    assert outcome.returncode == 0, outcome.output
    assert [p.name for p in (job / "dl").iterdir()] == ["sandbox_probe-1.0-py3-none-any.whl"]
    assert f"sandbox network: allowed GET {index_account.simple_url}sandbox-probe/" in outcome.network


def test_an_isolated_uv_build_fetches_its_back_end_through_the_proxy(job: Path) -> None:
    source = job / "src"
    (source / "tiny_sandboxed").mkdir(parents=True)
    (source / "tiny_sandboxed" / "__init__.py").write_text("")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=75"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "tiny-sandboxed"\nversion = "1.0"\n'
    )
    policy = SandboxPolicy.for_job(job, tool_env(job), network=NetworkAllowance.for_indexes([settings.BUILD_INDEX_URL]))
    argv = [
        str(BIN / "uv"),
        "build",
        "--wheel",
        "--python",
        sys.executable,
        "--default-index",
        settings.BUILD_INDEX_URL,
    ]
    outcome = run_sandboxed(policy, [*argv, "--out-dir", str(job / "dist"), "--no-config", str(source)], timeout=120)
    assert outcome.returncode == 0, outcome.output
    assert [p.name for p in (job / "dist").glob("*.whl")] == ["tiny_sandboxed-1.0-py3-none-any.whl"]
    assert "sandbox network: allowed CONNECT pypi.org:443" in outcome.network
    assert "sandbox network: allowed CONNECT files.pythonhosted.org:443" in outcome.network


@pytest.mark.parametrize(
    ("what", "path"),
    [
        ("the var folder", lambda: Path(settings.VAR_DIR)),
        ("the console's source tree", lambda: Path(settings.BASE_DIR) / "releases"),
        ("all of the jobs", lambda: Path(settings.JOB_WORK_ROOT)),
        ("another job", lambda: make_job_folder("neighbour")),
        ("the whole tool cache", lambda: Path(settings.TOOL_CACHE_DIR)),
        ("the host's root", lambda: Path("/")),
        ("the worker's home", lambda: Path.home() / ".config"),
    ],
)
def test_a_policy_that_would_show_the_console_s_own_files_is_refused(job: Path, what: str, path) -> None:
    with pytest.raises(StepFailed, match="The sandbox may not see"):
        check_policy(SandboxPolicy.for_job(job, tool_env(job), read_only=(path(),)))


def test_a_read_only_path_inside_the_job_folder_is_refused(job: Path) -> None:
    (job / "venv").mkdir()
    with pytest.raises(StepFailed, match="cannot be mounted read-only"):
        check_policy(SandboxPolicy.for_job(job, tool_env(job), read_only=(job / "venv",)))


def test_a_secret_s_name_in_the_environment_is_refused(job: Path) -> None:
    with pytest.raises(StepFailed, match="TWINE_PASSWORD may not enter a sandbox"):
        check_policy(SandboxPolicy.for_job(job, {**tool_env(job), "TWINE_PASSWORD": "x"}))


def _ask(socket_path: Path, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(socket_path))
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_the_proxy_reads_only_under_its_prefixes(
    devpi: DevpiServer, index_account: IndexAccount, tmp_path: Path
) -> None:
    events: list[ProxyEvent] = []
    proxy = SandboxProxy(
        tmp_path / "proxy.sock", NetworkAllowance.for_indexes([index_account.simple_url]), events.append
    )
    proxy.start()
    try:
        root = index_account.upload_url
        listed = _ask(proxy.socket_path, f"GET {index_account.simple_url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert listed.startswith(b"HTTP/1.1 200")
        escaped = _ask(proxy.socket_path, f"GET {root}../../+api HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert escaped.startswith(b"HTTP/1.1 403") and b"not in canonical form" in escaped
        other = _ask(proxy.socket_path, f"GET {devpi.url}/root/pypi/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert other.startswith(b"HTTP/1.1 403") and b"not under an allowed URL prefix" in other
        smuggled = _ask(proxy.socket_path, f"GET {root} HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".encode())
        assert smuggled.startswith(b"HTTP/1.1 403") and b"with a body" in smuggled
    finally:
        proxy.stop()
    assert [e.allowed for e in events] == [True, False, False, False]
    assert not proxy.socket_path.exists()


def test_the_unsafe_opt_out_runs_the_command_as_it_is_and_says_so(job: Path, settings) -> None:
    settings.UNSAFE_UNSANDBOXED_BUILDS = True
    lines: list[str] = []
    with sandboxed(SandboxPolicy.for_job(job, tool_env(job)), ["true"], report=lines.append) as command:
        assert command.argv == ["true"] and not command.sandboxed
    assert lines == ["sandbox: OFF (CONSOLE_UNSAFE_UNSANDBOXED_BUILDS): package code runs with the worker's rights"]


def test_the_opt_out_takes_only_its_one_value() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONSOLE_UNSAFE_UNSANDBOXED_BUILDS"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "CONSOLE_UNSAFE_UNSANDBOXED_BUILDS": "yes"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "CONSOLE_UNSAFE_UNSANDBOXED_BUILDS='yes': use one of" in result.stderr
    assert "package-code-can-read-every-worker-secret" in result.stderr
