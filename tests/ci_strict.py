"""A pytest plugin (``-p tests.ci_strict``, in pyproject.toml): under
``CI=true`` every test runs.

A test skipped for want of a browser, a sandbox, an index server or any
other tool fails instead, with its reason (tests/support/tools.py names the
command that installs what is missing). Outside CI a skip stays a skip, and
``-ra`` lists the reasons at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _pytest.reports import CollectReport, TestReport

from console.env import env_bool


def _skip_fails_in_ci(report: TestReport | CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not env_bool("CI", default=False):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"{reason.removeprefix('Skipped: ')} (CI=true: a test that cannot run fails the run)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _skip_fails_in_ci(outcome.get_result())  # type: ignore[attr-defined]
