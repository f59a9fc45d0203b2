"""Production settings: refuse to start without real secrets; `check --deploy` is clean."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.support.audit import new_signing_key

ROOT = Path(__file__).resolve().parent.parent


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS | {"DATABASE_URL", "AUDIT_CHECKPOINT_DIR"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


SECRETS = {"SECRET_KEY", "CONSOLE_TOKEN_KEYS", "AUDIT_CHAIN_KEYS", "AUDIT_CHECKPOINT_SIGNING_KEY"}


def production_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": "p" * 30 + "Q" * 30 + "z9!" * 5,
        "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode(),
        "AUDIT_CHAIN_KEYS": secrets.token_urlsafe(32),
        "AUDIT_CHECKPOINT_SIGNING_KEY": new_signing_key()[0],
    }


PRODUCTION = {
    "CONSOLE_MODE": "production",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ALLOWED_HOSTS": "console.example.org",
}


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = run_manage({**PRODUCTION, "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode()}, "check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when CONSOLE_MODE=production" in result.stderr


def test_production_mode_refuses_to_start_without_a_token_key_ring():
    result = run_manage({**PRODUCTION, "SECRET_KEY": "k" * 60}, "check")
    assert result.returncode != 0
    assert "CONSOLE_TOKEN_KEYS must be set when CONSOLE_MODE=production" in result.stderr


def test_check_deploy_is_clean_under_production_settings():
    result = run_manage({**PRODUCTION, **production_secrets()}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_bad_boolean_in_the_environment_stops_start_up_with_its_name():
    result = run_manage({"DEBUG": "maybe"}, "check")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.parametrize("missing", ["AUDIT_CHAIN_KEYS", "AUDIT_CHECKPOINT_SIGNING_KEY"])
def test_production_mode_refuses_to_start_without_the_audit_keys(missing):
    env = {**PRODUCTION, **production_secrets()}
    del env[missing]
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert f"{missing} must be set when CONSOLE_MODE=production" in result.stderr


@pytest.mark.parametrize(
    ("chain_keys", "message"),
    [
        ("short", "each key in AUDIT_CHAIN_KEYS must be at least 32 characters"),
        ("SECRET", "AUDIT_CHAIN_KEYS must not reuse SECRET_KEY or a key of CONSOLE_TOKEN_KEYS"),
        ("TOKEN", "AUDIT_CHAIN_KEYS must not reuse SECRET_KEY or a key of CONSOLE_TOKEN_KEYS"),
        ("x" * 40 + "," + "x" * 40, "AUDIT_CHAIN_KEYS lists the same key twice"),
    ],
)
def test_an_audit_chain_key_that_is_weak_or_shared_with_another_secret_stops_start_up(chain_keys, message):
    env = {**PRODUCTION, **production_secrets()}
    env["AUDIT_CHAIN_KEYS"] = {"SECRET": env["SECRET_KEY"], "TOKEN": env["CONSOLE_TOKEN_KEYS"]}.get(
        chain_keys, chain_keys
    )
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert message in result.stderr
    assert env["AUDIT_CHAIN_KEYS"] not in result.stderr  # the key itself is never printed


def test_a_signing_key_that_is_not_ed25519_stops_start_up():
    env = {**PRODUCTION, **production_secrets(), "AUDIT_CHECKPOINT_SIGNING_KEY": "bm90IGEga2V5"}
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "AUDIT_CHECKPOINT_SIGNING_KEY holds a value that is not an Ed25519 key (base64 of 32 bytes)" in result.stderr


def test_production_mode_refuses_to_start_with_nowhere_to_write_checkpoints():
    result = run_manage({**PRODUCTION, **production_secrets(), "AUDIT_CHECKPOINT_DIR": ""}, "check")
    assert result.returncode != 0
    assert "set at least one of AUDIT_CHECKPOINT_DIR, AUDIT_CHECKPOINT_EMAILS, AUDIT_CHECKPOINT_WITNESS_URL" in (
        result.stderr
    )


PRINT_AUDIT_KEYS = "from django.conf import settings; print(settings.AUDIT_CHAIN_KEYS[0], settings.SECRET_KEY)"


def test_embedded_secrets_from_an_older_version_gain_the_audit_keys_and_keep_their_own(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    secrets_file = var / "embedded-secrets.json"
    old = {"SECRET_KEY": "s" * 50, "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode()}
    secrets_file.write_text(json.dumps(old))
    env = {"CONSOLE_VAR_DIR": str(var), "DATABASE_URL": f"sqlite:///{var / 'console.sqlite3'}"}

    first = run_manage(env, "shell", "-c", PRINT_AUDIT_KEYS)
    assert first.returncode == 0, first.stderr
    stored = json.loads(secrets_file.read_text())
    assert {k: stored[k] for k in old} == old
    assert first.stdout.splitlines()[-1].split() == [stored["AUDIT_CHAIN_KEYS"], old["SECRET_KEY"]]
    assert len(base64.b64decode(stored["AUDIT_CHECKPOINT_SIGNING_KEY"])) == 32
    assert secrets_file.stat().st_mode & 0o077 == 0
    # Generated once: the next start seals with the same key.
    assert run_manage(env, "shell", "-c", PRINT_AUDIT_KEYS).stdout == first.stdout
