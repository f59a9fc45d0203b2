"""The console on its embedded default, as ``make run`` starts it: SQLite and
the filesystem broker in a var folder of the test's own, no PostgreSQL, no
Redis."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.devpi import free_port

ROOT = Path(__file__).resolve().parents[2]


def embedded_env(var_dir: Path) -> dict[str, str]:
    """This process's environment without the servers: the console falls back to SQLite and its own broker."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"CONSOLE_MODE": "embedded", "CONSOLE_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1"})
    return env


def embedded_manage(var_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=embedded_env(var_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class EmbeddedConsole:
    """``manage.py run_embedded`` on free loopback ports, its output in a file."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.index_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = var_dir.parent / "run_embedded.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> None:
        """Start it and wait until the web server answers."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_embedded",
                "--port",
                str(self.port),
                "--index-port",
                str(self.index_port),
            ],
            cwd=ROOT,
            env=embedded_env(self.var_dir),
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"run_embedded exited ({self.process.returncode}):\n{self.output()}")
            try:
                if requests.get(f"{self.url}/accounts/login/", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or listening while its workers boot
            time.sleep(0.3)
        raise RuntimeError(f"the console did not answer within {timeout:.0f} s:\n{self.output()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admin_password(self) -> str:
        found = re.search(r"Admin login created: admin / (\S+)", self.output())
        assert found, self.output()
        return found.group(1)

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        """The last resort of a failed test: KILL what is left of it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
