"""Under CI=true a test that cannot run fails the run, with its reason; on a
developer's machine it is skipped, and the reason says how to install what
it needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import TOOLS, install_command

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
import pytest

needs_browser = pytest.mark.skipif(True, reason="needs chromium; install with: apt-get install -y chromium")


@needs_browser
def test_in_a_browser():
    pass


def test_with_a_sandbox():
    pytest.skip("needs bwrap; install with: apt-get install -y bubblewrap")


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False


def test_plain():
    pass
"""

MODULE_SKIPPED = """
import pytest

pytest.skip("needs devpi-server; run make install", allow_module_level=True)


def test_against_an_index():
    pass
"""


def run_suite(tmp_path: Path, *, ci: str | None, suite: str = SUITE) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_suite.py").write_text(suite)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"PYTHONPATH": str(ROOT)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(tmp_path / "pytest.ini"),
            "-p",
            "tests.ci_strict",
            "-p",
            "no:django",
            "-p",
            "no:playwright",
            "-p",
            "no:cacheprovider",
            "-ra",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_under_ci_every_skip_fails_the_run_with_its_reason(tmp_path):
    result = run_suite(tmp_path, ci="true")

    assert result.returncode == 1, result.stdout
    summary = result.stdout.strip().splitlines()[-1]
    assert "1 passed" in summary
    assert "1 xfailed" in summary
    assert "skipped" not in summary
    assert "needs chromium; install with: apt-get install -y chromium (CI=true" in result.stdout
    assert "needs bwrap; install with: apt-get install -y bubblewrap (CI=true" in result.stdout


def test_under_ci_a_module_skipped_at_collection_stops_the_run_with_its_reason(tmp_path):
    result = run_suite(tmp_path, ci="true", suite=MODULE_SKIPPED)

    assert result.returncode != 0, result.stdout
    assert "needs devpi-server; run make install (CI=true" in result.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_is_a_skip_and_says_why(tmp_path, ci):
    result = run_suite(tmp_path, ci=ci)

    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout
    assert "needs chromium; install with: apt-get install -y chromium" in result.stdout


def test_the_install_command_names_the_debian_package_of_each_missing_tool():
    command = install_command([TOOLS["bwrap"], TOOLS["chromium"], TOOLS["initdb"]])
    assert command.endswith("apt-get install -y bubblewrap chromium postgresql")
