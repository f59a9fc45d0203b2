"""``make run``: the whole console on one machine, with no servers to install.

1. Migrate the SQLite database.
2. Create an admin login the first time (its password is printed once).
3. Start the sandbox index (devpi-server on loopback) and seed the
   environments: ``sandbox`` (that index), ``test-pypi`` and ``pypi``
   (the real services, without tokens).
4. Start the web server, a worker and beat; Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from releases.models import Environment
from releases.services.projects import environment_create

BIN = Path(sys.executable).parent


class Command(BaseCommand):
    help = "Run the console on its embedded default: web server, worker, beat and a sandbox index."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--index-port", type=int, default=3141)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("run_embedded is for CONSOLE_MODE=embedded; production runs web, worker and beat apart.")
        # Ctrl-C, or a TERM from a process manager, stops every child.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        call_command("migrate", verbosity=0)
        self.create_admin()
        children: list[subprocess.Popen[bytes]] = []
        try:
            index = start_sandbox_index(settings.VAR_DIR / "sandbox-index", options["index_port"])
            children.append(index.process)
            self.seed_environments(index)
            env = dict(os.environ)
            # Passkeys answer only the origin they were made on; browsers allow http for localhost alone.
            env.setdefault("WEBAUTHN_ORIGINS", f"http://localhost:{options['port']}")
            here = settings.BASE_DIR
            manage = [sys.executable, "-m", "celery", "-A", "console"]
            children.append(
                subprocess.Popen([*manage, "worker", "--loglevel", "INFO", "--concurrency", "2"], env=env, cwd=here)
            )
            children.append(
                subprocess.Popen(
                    [*manage, "beat", "--loglevel", "INFO", "--schedule", str(settings.VAR_DIR / "beat-schedule")],
                    env=env,
                    cwd=here,
                )
            )
            children.append(
                subprocess.Popen(
                    [
                        str(BIN / "gunicorn"),
                        "console.wsgi",
                        "--bind",
                        f"127.0.0.1:{options['port']}",
                        "--workers",
                        "2",
                        "--threads",
                        "4",
                        "--access-logfile",
                        "-",
                    ],
                    env=env,
                    cwd=here,
                )
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"Release console on http://localhost:{options['port']}/ (passkeys need this name)  (Ctrl-C stops)"
                )
            )
            wait_for_any(children)
        except KeyboardInterrupt:
            pass
        finally:
            stop_all(children)

    def create_admin(self) -> None:
        if User.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(self.style.WARNING(f"Admin login created: admin / {password}  (shown once; change it)"))

    def seed_environments(self, index: SandboxIndex) -> None:
        if not Environment.objects.filter(name="sandbox").exists():
            environment_create(
                name="sandbox",
                title="Sandbox",
                upload_url=index.upload_url,
                index_url=index.simple_url,
                fallback_index_url="https://pypi.org/simple/",
                username=index.user,
                token=index.password,
                actor=None,
            )
        if not Environment.objects.filter(name="test-pypi").exists():
            environment_create(
                name="test-pypi",
                title="Test PyPI",
                upload_url="https://test.pypi.org/legacy/",
                index_url="https://test.pypi.org/simple/",
                fallback_index_url="https://pypi.org/simple/",
                actor=None,
            )
        if not Environment.objects.filter(name="pypi").exists():
            environment_create(
                name="pypi",
                title="PyPI",
                upload_url="https://upload.pypi.org/legacy/",
                index_url="https://pypi.org/simple/",
                required_approvals=1,
                after="test-pypi",
                actor=None,
            )


class SandboxIndex:
    def __init__(self, process: subprocess.Popen[bytes], url: str, user: str, password: str) -> None:
        self.process = process
        self.user = user
        self.password = password
        self.upload_url = f"{url}/{user}/dev/"
        self.simple_url = f"{url}/{user}/dev/+simple/"


def start_sandbox_index(root: Path, port: int) -> SandboxIndex:
    """devpi-server on loopback, with one user and one index made the first time."""
    serverdir = root / "server"
    secret_file = root / "sandbox-password"
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    first_time = not serverdir.exists()
    if first_time:
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(BIN / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"],
            check=True,
            env=env,
            capture_output=True,
        )
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_urlsafe(24))
    password = secret_file.read_text().strip()
    url = f"http://127.0.0.1:{port}"
    log = (root / "devpi.log").open("ab")
    process = subprocess.Popen(
        [
            str(BIN / "devpi-server"),
            "--serverdir",
            str(serverdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--offline-mode",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise CommandError(f"The sandbox index did not start; see {root / 'devpi.log'} (is port {port} free?)")
        try:
            if requests.get(f"{url}/+api", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise CommandError("The sandbox index did not answer within 60 s.")
        time.sleep(0.2)
    if first_time:
        requests.put(f"{url}/sandbox", json={"password": password}, timeout=10).raise_for_status()
        requests.put(
            f"{url}/sandbox/dev", json={"bases": [], "volatile": False}, auth=("sandbox", password), timeout=10
        ).raise_for_status()
    return SandboxIndex(process, url, "sandbox", password)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def wait_for_any(children: list[subprocess.Popen[bytes]]) -> None:
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    stopped = next(child for child in children if child.poll() is not None)
    raise CommandError(f"{stopped.args!r} stopped (exit {stopped.returncode}); stopping the rest.")


def stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
