"""``make run``: the whole console on one machine, with no servers to install.

1. Migrate the SQLite database.
2. Create an admin login the first time (its password is printed once).
3. Start the sandbox index (devpi-server on loopback) and seed the
   environments: ``sandbox`` (that index), ``test-pypi`` and ``pypi``
   (the real services, without tokens).
4. Start the web server, a builder and a publisher worker
   (docs/security.md) and beat, and wait. Ctrl-C or TERM stops every
   process started (releases/management/commands/_supervisor.py); so does
   any of them stopping, with a message that names it.
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

from releases.management.commands._supervisor import STOP_GRACE, Child, Supervisor
from releases.models import Environment
from releases.services.projects import environment_create
from releases.steps.sandbox import sandbox_status

BIN = Path(sys.executable).parent


class Command(BaseCommand):
    help = (
        "Run the console on its embedded default: web server, builder and publisher workers, beat and a sandbox index."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--index-port", type=int, default=3141)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("run_embedded is for CONSOLE_MODE=embedded; production runs web, worker and beat apart.")
        # Ctrl-C, or a TERM from a process manager, stops every child.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        call_command("migrate", verbosity=0)
        self.create_admin()
        self.say_sandbox()
        children = Supervisor()
        stopped: Child | None = None
        try:
            index = start_sandbox_index(children, settings.VAR_DIR / "sandbox-index", options["index_port"])
            self.seed_environments(index)
            env = dict(os.environ)
            # Passkeys answer only the origin they were made on; browsers allow http for localhost alone.
            env.setdefault("WEBAUTHN_ORIGINS", f"http://localhost:{options['port']}")
            here = settings.BASE_DIR
            for role, worker_env in worker_environments(env).items():
                children.start(f"the {role}", worker_command(role), env=worker_env, cwd=here)
            children.start("beat", beat_command(), env=env, cwd=here)
            children.start("the web server", web_command(options["port"]), env=env, cwd=here)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Release console on http://localhost:{options['port']}/ (passkeys need this name)  (Ctrl-C stops)"
                )
            )
            stopped = children.wait_for_any()
            self.stderr.write(f"{stopped.name} stopped (exit {stopped.process.returncode}); stopping the rest.")
        except KeyboardInterrupt:
            self.stdout.write("Stopping the web server, the workers, beat and the sandbox index.")
        finally:
            killed = children.stop()
            if killed:
                self.stderr.write(f"Killed after {STOP_GRACE:.0f} s: {', '.join(killed)}.")
        if stopped is not None:
            raise CommandError(f"The console stopped because {stopped.name} did; its output is above.")

    def say_sandbox(self) -> None:
        """Whether package code will run in the sandbox here, before any does."""
        if settings.UNSAFE_UNSANDBOXED_BUILDS:
            self.stdout.write(
                self.style.ERROR("CONSOLE_UNSAFE_UNSANDBOXED_BUILDS is set: package code runs unsandboxed.")
            )
            return
        status = sandbox_status()
        if status.usable:
            self.stdout.write(f"Package code runs in the sandbox: {status.reason}.")
        else:
            self.stdout.write(
                self.style.ERROR(f"The sandbox does not work here ({status.reason}): builds and verifies will fail.")
            )

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


def worker_command(role: str) -> list[str]:
    return [
        *[sys.executable, "-m", "celery", "-A", "console", "worker", "--loglevel", "INFO", "--concurrency", "2"],
        *["--hostname", f"{role}@%h"],
    ]


def beat_command() -> list[str]:
    schedule = str(settings.VAR_DIR / "beat-schedule")
    return [sys.executable, "-m", "celery", "-A", "console", "beat", "--loglevel", "INFO", "--schedule", schedule]


def web_command(port: int) -> list[str]:
    return [
        str(BIN / "gunicorn"),
        "console.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
        # Within the supervisor's grace: requests in flight end, then the workers go.
        "--graceful-timeout",
        "4",
        # gunicorn's default control socket is one path in $HOME for every instance.
        "--no-control-socket",
        "--access-logfile",
        "-",
    ]


def worker_environments(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """A builder (package code, in the sandbox; no token key ring) and a
    publisher (the jobs that hold tokens; never package code)."""
    builder = {k: v for k, v in env.items() if k != "CONSOLE_TOKEN_KEYS"}
    return {"builder": {**builder, "WORKER_ROLE": "builder"}, "publisher": {**env, "WORKER_ROLE": "publisher"}}


class SandboxIndex:
    def __init__(self, process: subprocess.Popen[bytes], url: str, user: str, password: str) -> None:
        self.process = process
        self.user = user
        self.password = password
        self.upload_url = f"{url}/{user}/dev/"
        self.simple_url = f"{url}/{user}/dev/+simple/"


def start_sandbox_index(children: Supervisor, root: Path, port: int) -> SandboxIndex:
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
    process = children.start(
        "the sandbox index",
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
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or too busy starting to answer
        if time.monotonic() > deadline:
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
