"""What the sandbox costs a command: ``python -c pass`` run bare, in the
sandbox without network, and in the sandbox with network (the proxy
started and stopped, the relay in front of the command), each ``--runs``
times; the median and the slowest, in milliseconds. Also what handing a
job's folder over to the sandbox's uid costs for a verify environment.

With ``--installs``, what keeping uv's cache out of the sandbox costs, and
what installing wheels outside it saves: installing ``--package`` (default
``requests``, five wheels from PyPI) into a fresh environment, as the verify
does, (a) outside the sandbox, wheels only, from the workers' warm cache,
(b) in the sandbox, with a cache of the job's own, through the proxy; and
making a build environment for ``setuptools>=61`` (c) the way the build
step does (wheels outside, bytecode compiled in the sandbox) and (d) all in
the sandbox with a cache of the job's own.

    python -m bench.sandbox [--runs 20] [--installs] [--package requests]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.common import Stopwatch, median, setup_django, table

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--installs", action="store_true", help="Also time installs with and without uv's cache.")
    parser.add_argument("--package", default="requests")
    options = parser.parse_args()
    runs = options.runs
    setup_django()
    from django.conf import settings

    from releases.steps.netproxy import NetworkAllowance
    from releases.steps.sandbox import SandboxPolicy, hand_over, identity_for, sandbox_status, sandboxed

    print(f"sandbox: {sandbox_status().reason}")
    job = Path(settings.JOB_WORK_ROOT) / f"job-bench-{uuid.uuid4().hex[:8]}"
    (job / "home").mkdir(parents=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(job / "home"), "LANG": "C.UTF-8"}
    argv = [sys.executable, "-c", "pass"]
    network = NetworkAllowance.for_indexes(["https://pypi.org/simple/"])

    def bare() -> None:
        subprocess.run(argv, env=env, cwd=job, check=True)

    def in_sandbox(policy: SandboxPolicy) -> Callable[[], None]:
        def run() -> None:
            with sandboxed(policy, argv, report=lambda line: None) as command:
                process = subprocess.Popen(
                    command.argv, env=command.env, cwd=command.cwd, pass_fds=command.pass_fds, start_new_session=True
                )
                command.watch(process.pid, lambda why: os.killpg(process.pid, signal.SIGKILL))
                if process.wait() != 0:
                    raise SystemExit(f"the sandboxed command failed with {process.returncode}")

        return run

    cases = {
        "bare": bare,
        "sandboxed, no network": in_sandbox(SandboxPolicy.for_job(job, env)),
        "sandboxed, with the proxy": in_sandbox(SandboxPolicy.for_job(job, env, network=network)),
    }
    rows = []
    try:
        for name, case in cases.items():
            case()  # warm the page cache
            times = []
            for _ in range(runs):
                watch = Stopwatch()
                case()
                times.append(watch.seconds() * 1000)
            rows.append([name, runs, median(times), max(times)])
        venv = job / "venv"
        subprocess.run([str(Path(sys.executable).parent / "uv"), "venv", "--quiet", str(venv)], check=True)
        shutil.copytree(Path(sys.prefix) / "lib", venv / "lib", dirs_exist_ok=True)
        files = sum(len(f) + len(d) for _, d, f in os.walk(job))
        identity = identity_for(job)
        watch = Stopwatch()
        hand_over(job, identity)
        first = watch.seconds() * 1000
        watch = Stopwatch()
        hand_over(job, identity)
        again = watch.seconds() * 1000
    finally:
        shutil.rmtree(job, ignore_errors=True)
    if options.installs:
        print(install_costs(options.package, max(3, runs // 4)))
    print(table(["python -c pass", "runs", "median ms", "slowest ms"], rows))
    print(f"hand_over of {files} files: {first:.0f} ms the first time, {again:.0f} ms again")
    print(f"sandbox cost: {rows[1][2] - rows[0][2]:.0f} ms a command, {rows[2][2] - rows[0][2]:.0f} ms with network")


def install_costs(package: str, runs: int) -> str:
    """The table of ``--installs`` (see the module's docstring)."""
    from django.conf import settings

    from releases.steps import runner
    from releases.steps.sandbox import NO_NETWORK, Sandbox, index_network
    from releases.steps.tools import python_bin, uv_bin
    from releases.steps.workspace import Workspace

    class Quiet:
        def __init__(self) -> None:
            self.lost, self.full = threading.Event(), threading.Event()

        def write(self, text: str) -> None:
            pass

        def write_lines(self, lines: list[str]) -> None:
            pass

    index = "https://pypi.org/simple/"
    network = Sandbox(network=index_network([index]))

    def fresh() -> Workspace:
        job = Path(settings.JOB_WORK_ROOT) / f"job-bench-{uuid.uuid4().hex[:8]}"
        (job / "home").mkdir(parents=True)
        return Workspace(job_id=0, workdir=job, log=Quiet())

    def venv(ws: Workspace, folder: Path) -> list[str]:
        runner.run(ws, [uv_bin(), "venv", "--quiet", "--no-config", "--python", python_bin(), str(folder)])
        return [
            uv_bin(),
            "pip",
            "install",
            "--no-config",
            "--python",
            str(folder / "bin" / "python"),
            "--index-url",
            index,
        ]

    def outside(ws: Workspace) -> None:
        runner.run(ws, [*venv(ws, ws.workdir / "venv"), "--no-build", package])

    def inside(ws: Workspace) -> None:
        runner.run(ws, [*venv(ws, ws.workdir / "venv"), package], sandbox=network)

    def build_env_now(ws: Workspace) -> None:
        folder = ws.workdir / "build-env"
        runner.run(ws, [*venv(ws, folder), "--no-build", "setuptools>=61"])
        python = str(folder / "bin" / "python")
        runner.run(
            ws,
            [python, "-I", "-S", "-m", "compileall", "-q", "-j", "0", str(folder / "lib")],
            check=False,
            sandbox=NO_NETWORK,
        )

    def build_env_inside(ws: Workspace) -> None:
        folder = ws.workdir / "build-env"
        runner.run(ws, [*venv(ws, folder), "--compile-bytecode", "setuptools>=61"], sandbox=network)

    cases = {
        f"(a) {package}: outside, wheels only, warm shared cache": outside,
        f"(b) {package}: in the sandbox, the job's own cache": inside,
        "(c) build environment: wheels outside, compiled in the sandbox": build_env_now,
        "(d) build environment: all in the sandbox, the job's own cache": build_env_inside,
    }
    rows = []
    for name, case in cases.items():
        times = []
        for n in range(runs + 1):
            ws = fresh()
            try:
                watch = Stopwatch()
                case(ws)
                if n:  # the first fills the shared cache
                    times.append(watch.seconds() * 1000)
            finally:
                shutil.rmtree(ws.workdir, ignore_errors=True)
        rows.append([name, runs, median(times), max(times)])
    return table(["install", "runs", "median ms", "slowest ms"], rows)


if __name__ == "__main__":
    main()
