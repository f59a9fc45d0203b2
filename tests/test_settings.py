"""Production settings: refuse to start without real secrets; `check --deploy` is clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "CONSOLE_TOKEN_KEYS", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


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
    env = {
        **PRODUCTION,
        "SECRET_KEY": "p" * 30 + "Q" * 30 + "z9!" * 5,
        "CONSOLE_TOKEN_KEYS": Fernet.generate_key().decode(),
    }
    result = run_manage(env, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_bad_boolean_in_the_environment_stops_start_up_with_its_name():
    result = run_manage({"DEBUG": "maybe"}, "check")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr
