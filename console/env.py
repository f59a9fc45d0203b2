"""Typed readers for settings that come from environment variables.

Each helper fails loudly on a value it cannot use, so that a typo in a
deployment's environment stops the process at start-up instead of running
with a silent default.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from urllib.parse import urlsplit


class ImproperEnvironment(ValueError):
    """An environment variable is set to a value the console cannot use."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperEnvironment(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperEnvironment(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperEnvironment(f"{name}={value} is below the minimum of {minimum}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: Collection[str]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperEnvironment(f"{name}={raw!r}: use one of {', '.join(sorted(choices))}")
    return value


def env_url(name: str, default: str = "") -> str:
    """An http or https address with a host, or the default when unset."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    parsed = urlsplit(raw.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ImproperEnvironment(f"{name}={raw!r} is not an http or https address")
    return raw.strip()
