"""The programs the suite needs beyond its Python packages: where each one
is, which Debian package brings it, and which tests use it.

A test marked ``@needs("chromium")`` is skipped where the tool is missing,
with the command that installs it as the reason; under ``CI=true`` that skip
is a failure (tests/conftest.py). ``python -m tests.support.tools``, which
``make test`` runs first, names whatever is missing and prints the one
command that installs it all.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Tool:
    name: str
    package: str  # Debian's
    used_by: str
    # Absolute paths (globs allowed) or names looked up on PATH.
    where: tuple[str, ...]

    def found(self) -> bool:
        return any(glob.glob(place) if place.startswith("/") else shutil.which(place) for place in self.where)


TOOLS = {
    tool.name: tool
    for tool in (
        Tool("chromium", "chromium", "the browser tests (Playwright drives Debian's Chromium)", (CHROMIUM,)),
        Tool("bwrap", "bubblewrap", "the sandbox for package code", ("bwrap",)),
        Tool("git", "git", "sample packages in git repositories", ("git",)),
        Tool("redis-server", "redis-server", "chaos tests that stop their own Redis", ("redis-server",)),
        Tool(
            "initdb",
            "postgresql",
            "chaos tests that stop their own PostgreSQL",
            ("/usr/lib/postgresql/*/bin/initdb",),
        ),
    )
}


def missing(names: Iterable[str] | None = None) -> list[Tool]:
    wanted = TOOLS.values() if names is None else [TOOLS[name] for name in names]
    return [tool for tool in wanted if not tool.found()]


def install_command(tools: Iterable[Tool]) -> str:
    sudo = "" if os.geteuid() == 0 else "sudo "
    packages = " ".join(sorted({tool.package for tool in tools}))
    return f"{sudo}apt-get update && {sudo}apt-get install -y {packages}"


def needs(*names: str) -> pytest.MarkDecorator:
    """Skip (fail under CI=true) unless every named tool is installed."""
    gone = missing(names)
    reason = ""
    if gone:
        reason = f"needs {', '.join(tool.name for tool in gone)}; install with: {install_command(gone)}"
    return pytest.mark.skipif(bool(gone), reason=reason)


def main() -> int:
    gone = missing()
    if not gone:
        return 0
    print("The test suite needs programs this machine does not have:", file=sys.stderr)
    for tool in gone:
        print(f"  {tool.name} (Debian package {tool.package}): {tool.used_by}", file=sys.stderr)
    print(f"Install them with:\n  {install_command(gone)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
