"""Several worker hosts on one machine, sharing nothing but the services.

Each host is a network namespace of its own on a test bridge (``ip netns``,
a veth pair), with its own host name (a UTS namespace), its own folders
(var, jobs, tool cache) and a mount namespace in which the other hosts'
folders, the services' data and the test's sources are hidden under empty
read-only folders. The services listen on the bridge's address only: one
PostgreSQL, one Redis with a password, one S3 API server (moto), a devpi
index (also serving the build back-ends, since a host reaches nothing
else) and a git daemon serving the projects' sources. Everything is started
by the test and stopped by PID, or by deleting the namespaces and the
bridge it made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connections

from tests.support.devpi import DevpiServer, IndexAccount, free_port
from tests.support.s3 import S3Server
from tests.support.services import PostgresCluster, RedisServer

ROOT = Path(__file__).resolve().parents[2]
ALIAS = "hosts"
DATABASE = "console_hosts_stack"
WHEELS = ROOT / "var" / "test-cache" / "host-wheels"

# Short periods, so that the reaper's and beat's work is seen within a test.
PERIODS = {
    "JOB_HEARTBEAT_INTERVAL": "1",
    "JOB_STALE_AFTER": "4",
    "JOB_REQUEUE_AFTER": "3",
    "REAPER_INTERVAL": "1",
    "JOB_MAX_ATTEMPTS": "3",
    "WORKER_HEARTBEAT_INTERVAL": "1",
    "BEAT_LOCK_TIMEOUT": "4",
    # One job per project at a time: with two hosts of one slot each, a
    # project queueing many releases leaves the other slot to the rest.
    "PROJECT_MAX_RUNNING_JOBS": "1",
}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def network_namespaces_available() -> str:
    """Empty when this machine can make network namespaces; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "ip (iproute2) and unshare (util-linux) are needed"
    probe = f"rcprobe{os.getpid() % 100000}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"ip netns add failed: {exc.stderr.decode(errors='replace').strip()}"
    _ip("netns", "del", probe)
    return ""


class Network:
    """A bridge with the services' address, and one namespace per host on it."""

    def __init__(self) -> None:
        self.tag = f"rc{os.getpid() % 100000}"
        self.bridge = f"{self.tag}br"
        self.subnet = self._free_subnet()
        self.gateway = f"{self.subnet}.1"
        self.namespaces: list[str] = []

    @staticmethod
    def _free_subnet() -> str:
        taken = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True, check=True).stdout
        for third in range(os.getpid() % 200, os.getpid() % 200 + 200):
            subnet = f"10.213.{third % 250 + 1}"
            if f" {subnet}." not in taken:
                return subnet
        raise RuntimeError("no free 10.213.x.0/24 subnet for the test bridge")

    def up(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, index: int) -> tuple[str, str]:
        """A namespace linked to the bridge: its name and its address."""
        namespace = f"{self.tag}-h{index}"
        outside, inside = f"{self.tag}h{index}a", f"{self.tag}h{index}b"
        address = f"{self.subnet}.{10 + index}"
        _ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return namespace, address

    def pids(self, namespace: str) -> list[int]:
        result = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
        return [int(pid) for pid in result.stdout.split()]

    def down(self) -> None:
        for namespace in self.namespaces:
            for pid in self.pids(namespace):
                _kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class HostProcess:
    """One long-running process of a host (its worker, its beat)."""

    def __init__(self, host: Host, role: str, argv: list[str]) -> None:
        self.host = host
        self.role = role
        self.argv = argv
        self.log_path = host.root / f"{role}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, *, ready: bytes = b"") -> None:
        self.starts += 1
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.host.command(self.argv), stdout=log, stderr=subprocess.STDOUT, env=self.host.env, cwd=ROOT
            )
        if not ready:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.host.name} {self.role} exited; see {self.log_path}")
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                if ready in handle.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.host.name} {self.role} was not ready within 60 s; see {self.log_path}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reap(self) -> None:
        """Collect the exit of a process killed from outside."""
        if self.process is not None:
            self.process.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Host:
    """A worker host: a namespace, a name, folders, a worker and a beat."""

    name: str
    index: int
    namespace: str
    address: str
    root: Path
    env: dict[str, str]
    hide: list[Path]
    worker: HostProcess = field(init=False)
    beat: HostProcess = field(init=False)

    def __post_init__(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "console"]
        self.worker = HostProcess(
            self,
            "worker",
            [*celery, "worker", "--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
             "--hostname", f"worker@{self.name}"],
        )  # fmt: skip
        self.beat = HostProcess(self, "beat", [*celery, "beat", "--loglevel", "INFO"])

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` as run on this host: in its namespaces, under its name, its neighbours hidden."""
        hidden = [arg for folder in self.hide for arg in ("--hide", str(folder))]
        return [
            "ip", "netns", "exec", self.namespace,
            "unshare", "--uts", "--mount", "--propagation", "private",
            sys.executable, "-m", "tests.support.host_exec", "--hostname", self.name, *hidden, "--", *argv,
        ]  # fmt: skip

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv), env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start_worker(self) -> None:
        self.worker.start(ready=b" ready.")

    def kill(self, network: Network) -> list[int]:
        """SIGKILL every process on the host at once, as a power cut would."""
        pids = network.pids(self.namespace)
        for pid in pids:
            _kill(pid, signal.SIGKILL)
        for part in (self.worker, self.beat):
            if part.process is not None and part.process.pid in pids:
                part.reap()
        return pids


class GitDaemon:
    """``git daemon`` serving the projects' repositories, read-only, over git://."""

    def __init__(self, base: Path, host: str) -> None:
        self.base = base
        self.host = host
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://{self.host}:{self.port}/{name}"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={self.base}", f"--listen={self.host}",
             f"--port={self.port}", str(self.base)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def build_backend_wheels() -> list[Path]:
    """setuptools as a wheel, fetched once from PyPI into the test cache: the
    hosts build from the test's devpi, having no other way out."""
    WHEELS.mkdir(parents=True, exist_ok=True)
    found = sorted(WHEELS.glob("setuptools-*.whl"))
    if found:
        return found[-1:]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--isolated", "--quiet", "--no-deps", "--only-binary=:all:",
         "--index-url", "https://pypi.org/simple/", "--dest", str(WHEELS), "setuptools>=61"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return sorted(WHEELS.glob("setuptools-*.whl"))[-1:]


@dataclass
class HostsStack:
    """The services, two hosts on them, and a web side (the test's own commands)."""

    root: Path
    network: Network = field(init=False)
    postgres: PostgresCluster = field(init=False)
    redis: RedisServer = field(init=False)
    s3: S3Server = field(init=False)
    devpi: DevpiServer = field(init=False)
    git: GitDaemon = field(init=False)
    bucket: str = ""
    build_index: IndexAccount | None = None
    hosts: list[Host] = field(default_factory=list)
    web_env: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def start(self, names: tuple[str, ...] = ("host-a", "host-b")) -> None:
        """1. The bridge. 2. The services on its address. 3. The schema.
        4. The hosts, each with a worker and a beat. 5. A read-only alias for the test."""
        started = time.monotonic()
        self.network = Network()
        self.network.up()
        gateway = self.network.gateway
        services = self.root / "services"
        self.postgres = PostgresCluster(services / "postgres", host=gateway)
        self.postgres.init()
        with (self.postgres.datadir / "pg_hba.conf").open("a") as hba:
            # initdb trusts loopback only; the hosts connect from the bridge's subnet.
            hba.write(f"host all all {self.network.subnet}.0/24 trust\n")
        self.postgres.start()
        self.postgres.create_database(DATABASE)
        self.redis = RedisServer(services / "redis", host=gateway, password=secrets.token_urlsafe(24))
        self.redis.start()
        self.s3 = S3Server(host=gateway)
        self.s3.start()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server: a line per request
        self.bucket = self.s3.new_bucket()
        self.devpi = DevpiServer(services / "devpi", host=gateway)
        self.devpi.start()
        self.build_index = self.devpi.new_index()
        for wheel in build_backend_wheels():
            self.devpi.upload_raw(self.build_index, wheel)
        self.git = GitDaemon(self.root / "sources", gateway)
        self.git.start()
        common = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))},
            **PERIODS,
            **self.s3.environment(self.bucket),
            "DATABASE_URL": self.postgres.url(DATABASE),
            "REDIS_URL": self.redis.url(0),
            "CELERY_QUEUE": "console-hosts",
            "BUILD_INDEX_URL": self.build_index.simple_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.web_env = {**common, **self._folders(self.root / "web")}
        self.manage("migrate", "--noinput")
        self.timings["services and schema up"] = time.monotonic() - started
        started = time.monotonic()
        for index, name in enumerate(names, start=1):
            namespace, address = self.network.add_host(index)
            host_root = self.root / name
            host_root.mkdir()
            others = [self.root / other for other in names if other != name]
            hide = [services, self.root / "sources", self.root / "web", *others, ROOT / "var"]
            host = Host(name, index, namespace, address, host_root, {**common, **self._folders(host_root)}, hide)
            self.hosts.append(host)
        for host in self.hosts:
            host.start_worker()
            host.beat.start()
        self.timings["hosts up (worker and beat on each)"] = time.monotonic() - started
        default = connections.settings["default"]
        connections.settings[ALIAS] = {
            **default,
            "NAME": DATABASE,
            "USER": "postgres",
            "PASSWORD": "",
            "HOST": gateway,
            "PORT": str(self.postgres.port),
            "CONN_MAX_AGE": 0,
            "CONN_HEALTH_CHECKS": False,
            "TEST": {**default.get("TEST", {}), "NAME": None},
        }

    @staticmethod
    def _folders(root: Path) -> dict[str, str]:
        return {
            "CONSOLE_VAR_DIR": str(root / "var"),
            "JOB_WORK_ROOT": str(root / "var" / "jobs"),
            "TOOL_CACHE_DIR": str(root / "var" / "cache"),
        }

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def stop(self) -> None:
        if ALIAS in connections.settings:
            connections[ALIAS].close()
            del connections.settings[ALIAS]
        for host in self.hosts:
            host.beat.stop()
            host.worker.stop()
        if hasattr(self, "network"):
            self.network.down()
        for part in ("git", "devpi", "s3", "redis"):
            if hasattr(self, part):
                getattr(self, part).stop()
        if hasattr(self, "postgres"):
            self.postgres.stop("immediate")

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A headless command, from the web side."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=self.web_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def shell(self, code: str) -> str:
        """Python run by ``manage.py shell`` on the web side; what it printed."""
        return self.manage("shell", "--no-imports", "-c", code).stdout
