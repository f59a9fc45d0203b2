"""What the audit tests share: history made through the services, the
headless commands run as an operator runs them, and an insider's own
connection to the database."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection

from releases.models import AuditEvent
from releases.services.projects import environment_create, environment_update
from tests.support.worker import child_process_env

ROOT = Path(__file__).resolve().parents[2]


def make_history(count: int) -> list[AuditEvent]:
    """``count`` audit events, each written by a real change to an environment."""
    environment = environment_create(
        name="staging", upload_url="http://127.0.0.1:1/up/", index_url="http://127.0.0.1:1/simple/", actor=None
    )
    for hours in range(2, count + 1):
        environment_update(environment, request_ttl_hours=hours, actor=None)
    return list(AuditEvent.objects.order_by("id"))


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGS`` in a process of its own, on the test database.

    The command line, its output and its exit status are printed, so that a
    failing test (or ``pytest -rP``) shows exactly what an operator would see.
    """
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**child_process_env(), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    print(f"$ manage.py {' '.join(args)}\n{result.stdout}{result.stderr}[exit {result.returncode}]\n")
    return result


def database_url() -> str:
    """The test database, for connections of the test's own (an insider's psql)."""
    db = connection.settings_dict
    return f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def insider_connection(user: str = "") -> psycopg.Connection[tuple[object, ...]]:
    """A session like psql's: autocommit, none of the test runner's settings."""
    url = database_url()
    if user:
        url = url.replace("postgresql://postgres@", f"postgresql://{user}@", 1)
    return psycopg.connect(url, autocommit=True)


def new_signing_key() -> tuple[str, str]:
    """An Ed25519 key pair as the settings hold them: (private, public), base64 of the raw bytes."""
    key = Ed25519PrivateKey.generate()
    return (
        base64.b64encode(key.private_bytes_raw()).decode(),
        base64.b64encode(key.public_key().public_bytes_raw()).decode(),
    )
