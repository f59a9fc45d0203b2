"""The one place external commands run (DESIGN.md principle 6).

Every command is an argument list (never a shell), runs in the job's own
folder with a clean environment and a timeout, and has its output streamed
line by line into the job's log. A command that runs code of a package or
of its dependencies runs in the sandbox (``sandbox=``).
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from releases.errors import StepFailed
from releases.steps.sandbox import Sandbox, SandboxedCommand, sandboxed
from releases.steps.workspace import Workspace

# Tool configuration a job must not inherit: the machine's pip settings add
# extra indexes, and a verify must see only the index under test.
_TOOL_ENV = {
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "UV_NO_CONFIG": "1",
    "UV_NO_PROGRESS": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    # Only these git transports: never ext:: or fd:: that run commands.
    "GIT_ALLOW_PROTOCOL": "file:https:http:ssh:git",
    "NO_COLOR": "1",
    # Trust the operating system's certificates (a company CA, a proxy's).
    "UV_SYSTEM_CERTS": "1",
    # Installs copy from uv's cache, never hard-link: a file of an
    # environment that package code may write is never one of the cache's.
    "UV_LINK_MODE": "copy",
}
# Passed through from the worker's own environment when set: how this host
# reaches the network, never a credential.
_PASS_THROUGH = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


READ_SIZE = 1 << 18
# The tool's pipe is made this large where the system allows it (Linux lets
# an unprivileged process have 1 MiB by default; elsewhere it stays 64 KiB),
# so that a tool printing fast does not wait on a full pipe while the reader
# lets output gather or is slow to be scheduled on a busy machine.
PIPE_SIZE = 1 << 20


@dataclass(frozen=True)
class Result:
    returncode: int
    tail: list[str]


def clean_env(ws: Workspace, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(_TOOL_ENV)
    env.update({name: os.environ[name] for name in _PASS_THROUGH if name in os.environ})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    env["HOME"] = str(ws.workdir / "home")
    env["TMPDIR"] = str(ws.workdir)
    env["UV_CACHE_DIR"] = str(settings.TOOL_CACHE_DIR / "uv")
    env.update(extra or {})
    return env


def sandbox_env(ws: Workspace, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a sandboxed command: uv's cache in the job's own folder
    (the shared one is the worker's, and never the package's), and nothing
    of how this host reaches the network
    (the sandbox reaches an index through its own proxy, or not at all)."""
    inside = {name: value for name, value in env.items() if name not in _PASS_THROUGH}
    inside["UV_CACHE_DIR"] = str(ws.workdir / ".uv-cache")
    return inside


def run(
    ws: Workspace,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    show: Sequence[str] | None = None,
    prefix: str = "",
    sandbox: Sandbox | None = None,
) -> Result:
    """Run ``argv`` and stream its output into the job log.

    ``show`` is the command as written in the log (for example without a
    path a person does not need); secrets never reach argv in the first
    place, they travel in ``env``. ``prefix`` starts each of its log lines
    (to tell apart two commands that run at once). ``sandbox``: the command
    runs code of the package or of its dependencies, and runs in the
    sandbox (``steps/sandbox.py``) with what it names besides its job's
    folder; it is refused where the sandbox does not work.
    """
    ws.check_owned()
    limit = timeout or settings.JOB_COMMAND_TIMEOUT
    where = f"  [{sandbox.summary}]" if sandbox is not None and not settings.UNSAFE_UNSANDBOXED_BUILDS else ""
    ws.log.write(prefix + "$ " + " ".join(show or argv) + where)
    environment = dict(env) if env is not None else clean_env(ws)
    if sandbox is None:
        return _run(ws, list(argv), environment, cwd or ws.workdir, limit, check, show or argv, prefix)
    # Under the operator's opt-out the command runs as any other, shared cache included.
    inside = environment if settings.UNSAFE_UNSANDBOXED_BUILDS else sandbox_env(ws, environment)
    policy = sandbox.policy(ws.workdir, inside, cwd)
    with sandboxed(policy, argv, report=lambda line: ws.log.write_lines([prefix + line])) as command:
        return _run(
            ws, command.argv, command.env, command.cwd, limit, check, show or argv, prefix, sandboxed_command=command
        )


def _run(
    ws: Workspace,
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    limit: float,
    check: bool,
    show: Sequence[str],
    prefix: str,
    *,
    sandboxed_command: SandboxedCommand | None = None,
) -> Result:
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=sandboxed_command.pass_fds if sandboxed_command else (),
    )
    assert process.stdout is not None
    _enlarge_pipe(process.stdout.fileno())
    stopped: list[str] = []

    def stop(why: str) -> None:
        stopped.append(why)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    if sandboxed_command is not None:
        # The watchdog stops a sandbox that keeps starting processes.
        sandboxed_command.watch(process.pid, stop)
    timer = threading.Timer(limit, stop, args=(f"it ran longer than {limit:.0f} s",))
    timer.start()
    watcher = threading.Thread(target=_watch_ownership, args=(ws, process, stop), daemon=True)
    watcher.start()
    tail: deque[str] = deque(maxlen=40)
    try:
        for lines in _read_lines(process.stdout.fileno()):
            ws.log.write_lines([prefix + line for line in lines] if prefix else lines)
            tail.extend(lines)
            if ws.log.full.is_set() and not stopped:
                stop(f"it printed more than a job's log keeps ({settings.JOB_LOG_MAX_CHARS:,} characters)")
        returncode = process.wait()
    finally:
        timer.cancel()
        process.stdout.close()
        if process.poll() is None:
            stop("the job was interrupted")
            process.wait()
    ws.check_owned()
    name = Path(show[0]).name
    if stopped:
        raise StepFailed(f"{name} was stopped: {stopped[0]}.")
    if check and returncode != 0:
        # The last thing it said is usually why (a traceback's last line, a
        # tool's error); the reason is redacted where the job fails.
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        said = f": {last[:300]}" if last else "."
        raise StepFailed(f"{' '.join(show)} exited with status {returncode}{said}")
    return Result(returncode, list(tail))


def _read_lines(fd: int) -> Iterator[list[str]]:
    """The output's lines as they come, a read at a time (not a line at a
    time: a tool printing fast is read in large chunks). UTF-8, invalid bytes
    replaced; \\r\\n, \\r and \\n all end a line, as in text mode."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        chunk = os.read(fd, READ_SIZE)
        text = pending + decoder.decode(chunk, final=not chunk)
        if not chunk:
            if text:
                yield text.splitlines()
            return
        end = text.rfind("\n")
        if end < 0:
            pending = text
            continue
        pending = text[end + 1 :]
        yield (text[:end] + "\n").splitlines()
        if len(chunk) < READ_SIZE // 4:
            # A little output: let more gather in the pipe rather than wake
            # up for every line a tool prints. The page shows it 10 ms later;
            # a tool printing fast is not slowed by our reads.
            time.sleep(0.01)


def _enlarge_pipe(fd: int) -> None:
    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is not None:
        # Refused above the system's limit: the pipe keeps its size.
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, setsize, PIPE_SIZE)


def _watch_ownership(ws: Workspace, process: subprocess.Popen[bytes], stop: object) -> None:
    while process.poll() is None:
        if ws.log.lost.wait(0.5):
            if process.poll() is None and callable(stop):
                stop("another worker took over the job")
            return


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
