"""A private Redis and a private PostgreSQL cluster, for tests that stop them.

The machine's shared Redis and PostgreSQL serve other test sessions: a test
that shuts its broker or database down starts its own, on a free loopback
port, and stops only that one, by PID or with ``pg_ctl`` on its own folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.devpi import free_port


class RedisServer:
    """``redis-server`` without persistence, as the broker of a chaos test
    (listening on ``host``, with ``password`` when given)."""

    def __init__(self, root: Path, *, port: int | None = None, host: str = "127.0.0.1", password: str = "") -> None:
        self.root = root
        self.host = host
        self.password = password
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = root / "redis.log"

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    def _cli(self) -> list[str]:
        # The password reaches redis-cli through its environment (REDISCLI_AUTH), never argv.
        return ["redis-cli", "-h", self.host, "-p", str(self.port)]

    def _cli_env(self) -> dict[str, str]:
        return {**os.environ, "REDISCLI_AUTH": self.password} if self.password else dict(os.environ)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                # The configuration from standard input: a password stays out of argv.
                "-",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        config = [
            f"bind {self.host}",
            f"port {self.port}",
            'save ""',
            "appendonly no",
            f"dir {self.root}",
            f"logfile {self.log_path}",
            *([f"requirepass {self.password}"] if self.password else []),
        ]
        assert self.process.stdin is not None
        self.process.stdin.write("\n".join(config).encode() + b"\n")
        self.process.stdin.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.log_path}")
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 20 s")

    def ping(self) -> bool:
        result = subprocess.run(
            [*self._cli(), "ping"], capture_output=True, text=True, check=False, env=self._cli_env()
        )
        return result.stdout.strip() == "PONG"

    def shutdown_nosave(self) -> None:
        """What an operator's ``redis-cli shutdown nosave`` does: every message is gone."""
        subprocess.run([*self._cli(), "shutdown", "nosave"], capture_output=True, check=False, env=self._cli_env())
        if self.process is not None:
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def postgres_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's initdb is not installed (/usr/lib/postgresql/*/bin)")
    return Path(found[-1]).parent


class PostgresCluster:
    """A throwaway PostgreSQL cluster in ``root``, run as the ``postgres`` user when we are root."""

    def __init__(self, root: Path, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host
        self.port = port or free_port()
        self.datadir = root / "data"
        self.log_path = root / "postgres.log"
        self.bindir = postgres_bindir()
        self.pid: int | None = None

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def url(self, name: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{name}"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o755)
            for parent in self.root.parents:
                # The postgres user must be able to reach its folder.
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o111)
        subprocess.run(
            self._as_owner(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.datadir),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        result = subprocess.run(
            self._as_owner(
                [
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.datadir),
                    "--log",
                    str(self.log_path),
                    "--wait",
                    "--options",
                    f"-p {self.port} -c listen_addresses={self.host} -c unix_socket_directories={self.root} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                    "start",
                ]
            ),
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}\n{log}")
        self.pid = int((self.datadir / "postmaster.pid").read_text().split()[0])

    def stop(self, mode: str = "fast") -> None:
        if self.pid is None:
            return
        result = subprocess.run(
            self._as_owner(
                [str(self.bindir / "pg_ctl"), "--pgdata", str(self.datadir), "--mode", mode, "--wait", "stop"]
            ),
            check=False,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0 and _alive(self.pid):
            # pg_ctl could not do it: stop our own postmaster by its PID.
            os.kill(self.pid, signal.SIGINT if mode == "fast" else signal.SIGQUIT)
            deadline = time.monotonic() + 30
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.pid = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (dropping every connection), wait, start it again."""
        self.stop("fast")
        time.sleep(down_for)
        self.start()

    def create_database(self, name: str) -> None:
        subprocess.run(
            [
                str(self.bindir / "createdb"),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--username",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
