"""A real package index for tests: devpi-server on a free loopback port."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class IndexAccount:
    """One user's index on the server: where to upload, and what to read."""

    user: str
    password: str
    upload_url: str
    simple_url: str


class DevpiServer:
    def __init__(self, root: Path, *, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.root = root
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count(1)

    def start(self) -> None:
        bindir = Path(sys.executable).parent
        serverdir = self.root / "server"
        env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
        if not serverdir.exists():
            subprocess.run(
                [str(bindir / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"],
                check=True,
                capture_output=True,
                env=env,
            )
        log = (self.root / "devpi.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(bindir / "devpi-server"),
                "--serverdir",
                str(serverdir),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--offline-mode",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devpi-server exited; see {self.root / 'devpi.log'}")
            try:
                if requests.get(f"{self.url}/+api", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("devpi-server did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def new_index(self, password: str | None = None) -> IndexAccount:
        """A fresh user with an empty index (no inheritance from PyPI)."""
        n = next(self._counter)
        user = f"user{n}"
        password = password or f"password-{n}"
        requests.put(f"{self.url}/{user}", json={"password": password}, timeout=10).raise_for_status()
        requests.put(
            f"{self.url}/{user}/dev", json={"bases": [], "volatile": False}, auth=(user, password), timeout=10
        ).raise_for_status()
        return IndexAccount(
            user=user,
            password=password,
            upload_url=f"{self.url}/{user}/dev/",
            simple_url=f"{self.url}/{user}/dev/+simple/",
        )

    def upload_raw(self, account: IndexAccount, path: Path) -> None:
        """Put a file on the index behind the console's back (twine, as a person would)."""
        subprocess.run(
            [
                sys.executable,
                "-m",
                "twine",
                "upload",
                "--non-interactive",
                "--disable-progress-bar",
                "--repository-url",
                account.upload_url,
                str(path),
            ],
            check=True,
            capture_output=True,
            env={
                **os.environ,
                "TWINE_USERNAME": account.user,
                "TWINE_PASSWORD": account.password,
                "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            },
        )

    def _log_lines(self) -> list[str]:
        return (self.root / "devpi.log").read_text(errors="replace").splitlines()

    def stored_count(self, account: IndexAccount, filename: str) -> int:
        """How many times the index stored a file called ``filename`` (from its log)."""
        marker = f"link {account.user}/dev/+f/"
        return sum(
            1
            for line in self._log_lines()
            if "added <Rel.ReleaseFile" in line and marker in line and line.endswith("/" + filename)
        )

    def upload_requests(self, account: IndexAccount) -> int:
        """How many upload requests reached the index for this account."""
        return sum(1 for line in self._log_lines() if f"POST /{account.user}/dev/" in line)
