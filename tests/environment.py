"""Loaded by pytest before Django (``-p tests.environment``): the test
environment's defaults, each overridable from the shell.

Tests run against PostgreSQL and Redis on localhost, never SQLite or the
filesystem broker: those are the production components.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
_var = Path(tempfile.mkdtemp(prefix="console-tests-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


defaults = {
    "CONSOLE_MODE": "embedded",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/console",
    "REDIS_URL": "redis://127.0.0.1:6379/9",
    "SECRET_KEY": "tests-only-secret-key-" + "x" * 40,
    "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode(),
    "AUDIT_CHAIN_KEYS": secrets.token_urlsafe(32),
    "AUDIT_CHECKPOINT_SIGNING_KEY": base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode(),
    # No checkpoint folder by default: a test that writes checkpoints gives its own,
    # so that one test's checkpoints never judge another test's chain.
    "AUDIT_CHECKPOINT_DIR": "",
    "CONSOLE_VAR_DIR": str(_var),
    # Shared across runs: uv's cache of build back-ends and wheels.
    "TOOL_CACHE_DIR": str(ROOT / "var" / "test-cache"),
    # One queue per test session, so that two sessions never take each other's tasks.
    "CELERY_QUEUE": f"console-tests-{os.getpid()}",
    # And a cache of its own: nothing one session kept is read by the next.
    "CACHE_KEY_PREFIX": f"console-tests-{os.getpid()}",
    "JOB_HEARTBEAT_INTERVAL": "1",
    "JOB_STALE_AFTER": "4",
    "JOB_REQUEUE_AFTER": "3",
    "VERIFY_ATTEMPTS": "3",
    "VERIFY_BACKOFF_MS": "200",
    "INDEX_WAIT_SECONDS": "20",
    # Transient HTTP failures are asked again at once: stand-ins answer at once.
    "HTTP_RETRY_BACKOFF_MS": "20",
    # The GitHub stand-in answers at once: nobody waits on a retry or a poll.
    "GITHUB_RETRIES": "3",
    "GITHUB_RETRY_BACKOFF_MS": "0",
    "GITHUB_MAX_WAIT": "0",
    "GITHUB_THROTTLE_MS": "0",
    "GITHUB_POLL_INTERVAL_MS": "20",
    "GITHUB_POLL_MAX_MS": "200",
    "GITHUB_FIND_RUN_TIMEOUT": "10",
    "GITHUB_RUN_TIMEOUT": "60",
    # Loopback stand-ins (tests/support) listen here; nothing reaches the public services.
    "OSV_API_URL": f"http://127.0.0.1:{_free_port()}",
    "PYPISTATS_API_URL": f"http://127.0.0.1:{_free_port()}/api",
}
for key, value in defaults.items():
    os.environ.setdefault(key, value)
