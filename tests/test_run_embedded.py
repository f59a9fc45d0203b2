"""``make run`` (``manage.py run_embedded``) stops everything it started.

The console runs truly embedded (SQLite and the filesystem broker in a var
folder of the test's own), a browser keeps live pages open on it, and a job
runs a tool in a session of its own. After Ctrl-C or TERM no process below
``run_embedded`` survives, nor any in a session it started, and its ports are
free again, within 10 s."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.embedded import EmbeddedConsole, embedded_manage
from tests.support.processes import ProcessInfo, alive, all_processes, descendants, process_info
from tests.support.sample import SampleRepo, git
from tests.support.tools import CHROMIUM, needs

# A build back-end run that outlives the test unless someone stops it: the
# job's tool, in its own session, is still running when the console is told to stop.
SLOW_SETUP = "import time\ntime.sleep(900)\nfrom setuptools import setup\nsetup()\n"
STOP_WITHIN = 10.0


@pytest.fixture
def console(tmp_path: Path) -> Iterator[EmbeddedConsole]:
    console = EmbeddedConsole(tmp_path / "var")
    seen: dict[tuple[int, int], ProcessInfo] = {}
    console.seen = seen  # type: ignore[attr-defined]
    try:
        yield console
    finally:
        # A failed test leaves nothing behind either. A console still running
        # (a start that timed out, an assertion) is asked to stop, as a person
        # would, then whatever the test saw start is killed, by pid and start time.
        if console.process is not None and console.process.poll() is None:
            remember_tree(console)
            console.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                console.process.wait(STOP_WITHIN + 5)
        console.kill()
        for info in seen.values():
            if alive(info):
                os.kill(info.pid, signal.SIGKILL)


def remember_tree(console: EmbeddedConsole) -> list[ProcessInfo]:
    """run_embedded and everything below it now, kept for the end of the test."""
    root = process_info(console.pid)
    assert root is not None
    tree = [root, *descendants(console.pid)]
    for info in tree:
        console.seen[info.key] = info  # type: ignore[attr-defined]
    return tree


def port_free(port: int) -> bool:
    """Nothing listens there, and a new server can bind it (as a second `make run` would)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def leftovers(console: EmbeddedConsole, tree: list[ProcessInfo]) -> list[str]:
    """What still runs of ``tree``, or in any session it had, or on the ports."""
    sessions = {info.sid for info in tree if info.pid != console.pid} - {os.getsid(0)}
    left = [f"{info.pid} {info.command}" for info in tree if alive(info)]
    left += [
        f"{info.pid} (session {info.sid}) {info.command}"
        for info in all_processes()
        if info.sid in sessions and info.state != "Z" and info.key not in {t.key for t in tree}
    ]
    left += [f"port {port}" for port in (console.port, console.index_port) if not port_free(port)]
    return left


def wait_until_all_gone(console: EmbeddedConsole, tree: list[ProcessInfo], within: float) -> float:
    started = time.monotonic()
    while True:
        console.process.poll()  # type: ignore[union-attr]
        left = leftovers(console, tree)
        elapsed = time.monotonic() - started
        if not left:
            return elapsed
        if elapsed > within:
            raise AssertionError(f"still there {elapsed:.1f} s after the signal: {left}\n{console.output()[-3000:]}")
        time.sleep(0.1)


def slow_sample(path: Path) -> SampleRepo:
    repo = SampleRepo(path)
    repo.commit_version("1.0.0")
    (path / "setup.py").write_text(SLOW_SETUP)
    git(path, "add", "setup.py")
    git(path, "commit", "--quiet", "-m", "a slow build")
    git(path, "tag", "v1.0.0")
    return repo


def sign_in(page: Page, console: EmbeddedConsole) -> None:
    page.goto(f"{console.url}/accounts/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(console.admin_password())
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


@needs("chromium")
@pytest.mark.parametrize(
    "sig", [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="term", marks=pytest.mark.slow)]
)
def test_stopping_the_console_stops_every_process_and_frees_its_ports_with_live_pages_open(console, tmp_path, sig):
    console.start()
    repo = slow_sample(tmp_path / "sample-pkg")
    added = embedded_manage(console.var_dir, "project_add", repo.name, "--source", str(repo.path))
    assert added.returncode == 0, added.stderr
    created = embedded_manage(console.var_dir, "release_create", repo.name, "1.0.0", "--ref", "v1.0.0")
    assert created.returncode == 0, created.stderr

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context()
            dashboard = context.new_page()
            dashboard.set_default_timeout(30_000)
            sign_in(dashboard, console)
            release = context.new_page()
            release.set_default_timeout(120_000)
            release.goto(f"{console.url}/projects/{repo.name}/releases/1.0.0/")
            # The page polls (htmx, every 2 s) while the build runs its back-end, which sleeps.
            expect(release.locator(".live-dot")).to_be_visible()
            expect(release.get_by_role("log")).to_contain_text("$ uv build")
            tree = remember_tree(console)
            children = {info.pid for info in tree if info.ppid == console.pid}
            tools = [info for info in tree if info.sid not in children and info.pid != console.pid]
            assert tools, "the build's tool was expected in a session of its own"

            console.signal(sig)
            elapsed = wait_until_all_gone(console, tree, STOP_WITHIN)
            # The browser still asks; nobody answers.
            with pytest.raises(Exception, match="ERR_CONNECTION_REFUSED"):
                dashboard.goto(f"{console.url}/")
        finally:
            browser.close()
    assert console.process.wait(5) == 0
    assert elapsed < STOP_WITHIN


def test_a_child_that_dies_stops_the_rest_and_is_named(console):
    console.start()
    tree = remember_tree(console)
    (beat,) = [info for info in tree if info.ppid == console.pid and " beat " in info.command]

    os.kill(beat.pid, signal.SIGKILL)

    wait_until_all_gone(console, tree, STOP_WITHIN)
    assert console.process.wait(5) == 1
    output = console.output()
    assert "beat stopped (exit -9); stopping the rest." in output
    assert "The console stopped because beat did" in output
