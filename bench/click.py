"""Click to verified, in a real browser: a releaser clicks "Publish to
<environment>" on a built release's page, and the clock stops when the
environment's row says "Succeeded" (Playwright driving Debian's Chromium
against gunicorn, a worker, and a local devpi index). Beside it, in the
same rounds, the same part of the fastest way by hand: ``uv publish`` of
the built files, then ``uv venv`` + ``uv pip install`` + an import.

    python -m bench.click [--rounds 5] [--embedded]
"""

from __future__ import annotations

import argparse
import os
import re
import time
import uuid
from pathlib import Path

from bench.common import Stopwatch, bench_stack, median, table
from bench.pipeline import person_env, run

CHROMIUM = "/usr/bin/chromium"


def uv_publish_and_install(repo, account, version: str, workdir: Path) -> float:  # type: ignore[no-untyped-def]
    """uv publish of files built beforehand, then uv venv + uv pip install + import, timed together."""
    from releases.steps.tools import uv_bin

    repo.commit_version(version, tag=f"v{version}")
    person = {**person_env(), "UV_NO_CONFIG": "1"}
    dist = workdir / "dist"
    run([uv_bin(), "build", "--quiet", "--out-dir", str(dist), str(repo.path)], env=person)
    clock = Stopwatch()
    run(
        [
            uv_bin(),
            "publish",
            "--quiet",
            "--publish-url",
            account.upload_url,
            *[str(p) for p in sorted(dist.iterdir())],
        ],
        env={**person, "UV_PUBLISH_USERNAME": account.user, "UV_PUBLISH_PASSWORD": account.password},
    )
    venv = workdir / "venv"
    run([uv_bin(), "venv", "--quiet", str(venv)], env=person)
    run(
        [
            uv_bin(),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            "--index-url",
            account.simple_url,
            f"{repo.name}=={version}",
        ],
        env=person,
    )
    run([str(venv / "bin" / "python"), "-c", f"import {repo.module}"], env=person)
    return clock.seconds()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--embedded", action="store_true", help="SQLite and the embedded broker.")
    args = parser.parse_args(argv)
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls
    # made here in between are still synchronous (as the browser tests have it).
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    where = "SQLite + the embedded broker" if args.embedded else "PostgreSQL + Redis"
    with bench_stack("bench-click-", embedded=args.embedded) as stack:
        tmp, devpi = stack.tmp, stack.devpi
        from bench.web import start_gunicorn
        from releases.models import Release
        from releases.services.projects import environment_create, project_create
        from releases.services.releases import release_create
        from tests.support.console import PASSWORD, person_with_role
        from tests.support.devpi import free_port
        from tests.support.sample import SampleRepo
        from tests.support.worker import WorkerProcess

        worker = WorkerProcess(tmp / "logs", "bench-worker", env=dict(os.environ), pool="prefork")
        port = free_port()
        server = None
        clicks: list[float] = []
        by_hand: list[float] = []
        try:
            worker.start()
            server = start_gunicorn(port, 2, tmp / "access.log")
            run_id = uuid.uuid4().hex[:6]
            account = devpi.new_index()
            environment_create(
                name=f"click-{run_id}",
                # The bench database keeps earlier runs' environments: a title of its own.
                title=f"Bench index {run_id}",
                upload_url=account.upload_url,
                index_url=account.simple_url,
                username=account.user,
                token=account.password,
                actor=None,
            )
            repo = SampleRepo(tmp / "repo", name=f"click-{run_id}")
            repo.commit_version("0.0.0")
            project = project_create(name=repo.name, source=str(repo.path), actor=None)
            username = f"clicker-{run_id}"
            person_with_role("releaser", username=username)
            base = f"http://127.0.0.1:{port}"
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
                )
                page = browser.new_page()
                page.set_default_timeout(120_000)
                page.goto(f"{base}/accounts/login/")
                page.get_by_label("Username").fill(username)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                for n in range(args.rounds + 1):
                    version = f"1.{n}.0"
                    repo.commit_version(version, tag=f"v{version}")
                    release = release_create(project=project, version=version, ref=f"v{version}", actor=None)
                    while Release.objects.get(pk=release.pk).is_building:
                        time.sleep(0.05)
                    page.goto(f"{base}/projects/{repo.name}/releases/{version}/")
                    row = page.get_by_role("row", name=re.compile(rf"^Bench index {run_id}"))
                    clock = Stopwatch()
                    row.get_by_role("button", name=f"Publish to Bench index {run_id}").click()
                    expect(row.locator(".badge")).to_have_text("Succeeded")
                    click = clock.seconds()
                    hand = uv_publish_and_install(repo, account, f"1.{n}.1", tmp / f"uv-{n}")
                    if n == 0:
                        continue  # warm-up
                    clicks.append(click)
                    by_hand.append(hand)
                    print(f"round {n}: click to verified {click:.2f} s, uv publish + install {hand:.2f} s", flush=True)
                browser.close()
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
            worker.stop()
    print(
        table(
            ["measure", "median", "min", "max"],
            [
                ["click to verified (browser)", median(clicks), min(clicks), max(clicks)],
                ["uv publish + uv venv + uv pip install + import", median(by_hand), min(by_hand), max(by_hand)],
            ],
        )
    )
    ratio = median(clicks) / median(by_hand)
    print(f"click to verified / uv by hand = {ratio:.2f} on {where} (median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
