"""The sandbox that every command running a package's own code goes through
(build back-ends, installs that may build an sdist, the verify install and
import, cyclonedx-py over the installed environment): DESIGN.md principle 9.

The package is hostile. Run by the worker as it is, its code could read the
worker's environment through ``/proc/<ppid>/environ`` (SECRET_KEY,
CONSOLE_TOKEN_KEYS, DATABASE_URL, REDIS_URL), the var folder's secrets file
and SQLite database, a concurrent twine's TWINE_PASSWORD, write a ``.pth``
into another project's cached build environment, and talk to PostgreSQL and
Redis on loopback. In the sandbox (bubblewrap) it cannot.

What it sees: an allow-list of mounts on an empty root, never ``/``:

* ``/usr`` read-only, and the ``/bin``, ``/lib``... links into it: the
  programs and libraries of the operating system, nothing of anyone's;
* from ``/etc`` only what tools need and nobody keeps secret: the CA
  certificates (``/etc/ssl/certs``: an index behind a company's or an egress
  gateway's CA), ``alternatives`` (``cc`` for C extensions), ``ld.so.cache``,
  ``os-release``; and ``passwd``, ``group``, ``hosts`` and ``nsswitch.conf``
  written for the sandbox (its one user, localhost, no DNS);
* the Python installation (``sys.base_prefix``) and the console's virtual
  environment (``sys.prefix``: uv, cyclonedx-py) read-only;
* the paths the policy names: the job's own folder read-write (the source,
  ``dist``, the verify environment), and read-only what the step needs
  besides (a project's cached build environment);
* a private, size-limited ``/tmp`` and ``/dev/shm``, a ``/proc`` of its own
  PID namespace, a minimal ``/dev`` (null, zero, random, tty...), and in
  ``/run/console`` the proxy's socket and the relay when it has network.

Never the console's source tree, its var folder (``settings.VAR_DIR``: the
secrets file, the SQLite file, the artifacts), other jobs' folders, the
tool cache as a whole, the worker's home: ``check_policy`` refuses a policy
that names one of them or a folder holding one.

Namespaces: its own PID namespace (no other process is visible, so there is
no ``/proc/<pid>/environ`` to read and nothing to signal or trace; when its
first process ends the kernel kills every process left in it), network
namespace (only ``lo``: PostgreSQL, Redis and every other service of the
host are out of reach; an index only through the allow-listing proxy of
``netproxy``), IPC, UTS and user namespaces, and no new user namespace
inside (``--disable-userns``: the kernel's attack surface stays that of an
unprivileged process). ``--die-with-parent`` kills it when the worker dies
(once bwrap has made it: a few milliseconds after its start),
``--new-session`` keeps it off the worker's terminal, ``--clearenv`` leaves
exactly the policy's environment, nothing inherited (bwrap reads the values
from a descriptor: the command line is readable by every user of the host).
No capabilities; setuid programs do nothing (``nosuid`` mounts, no new
privileges).

Identity. bwrap run by root with ``--uid 65534`` maps the sandbox's user
onto real root: files owned by root then look like the sandbox user's own,
and can be read and written wherever they are mounted read-write (tried: a
root-owned 0600 file was read, and the files the sandbox made were root's
on the host), and RLIMIT_NPROC is not enforced for real root. So when the
worker is root the package runs as a real unprivileged uid of its own (one
per job folder, far above ordinary users): an outer bwrap, still root, makes
the mounts and the PID, network, IPC and UTS namespaces (root can reach
every path it binds, a Python under ``/root`` included); setpriv
(util-linux) drops to that uid, every capability and the bounding set; an
inner, unprivileged bwrap makes the user namespace and disables further
ones. The job's folder is handed over to that uid before each command, so
that file permissions defend as well. A worker that is not root runs one
unprivileged bwrap as its own uid. Either way, inside the sandbox that uid
is ``INSIDE_UID`` (1000, "sandbox"), the same for every job: what a build
records of its files' owner does not depend on which job built it.

Limits (prlimit, util-linux, on the argument list: a ``preexec_fn`` is not
safe in a threaded worker): CPU seconds per process, address space, file
size, open files, no core dumps, and the tasks of the sandbox's uid; nice
and ionice, so that a busy package does not slow the other jobs. A watchdog
(``sandbox_watchdog``) gives the sandbox's sessions a nice of their own (the
scheduler shares the CPU between sessions, whatever a process's nice), and
stops a sandbox that stays at its process limit.

Usage (the tool runner)::

    policy = SandboxPolicy.for_job(ctx.workdir, env, read_only=(build_env.folder,),
                                   network=NetworkAllowance.for_indexes([settings.BUILD_INDEX_URL]))
    with sandboxed(policy, argv, report=ctx.log.write) as command:
        process = subprocess.Popen(command.argv, env=command.env, cwd=command.cwd,
                                   pass_fds=command.pass_fds, start_new_session=True, ...)
        command.watch(process.pid, stop)   # stop(reason) kills the process group
        ...read the output, wait; kill the process group before leaving...
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from releases.errors import StepFailed
from releases.steps.netproxy import NetworkAllowance, SandboxProxy
from releases.steps.sandbox_watchdog import Watchdog, tasks_of

GiB = 1 << 30
# The sandbox users of a root worker: one per job folder, far from the uids
# of people, services and the usual subordinate ranges (100000-165535).
SANDBOX_UID_BASE = 1_900_000_000
SANDBOX_UID_SPAN = 1 << 24
# Where the tools are looked for: PATH is not trusted to find what runs as root.
SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"
TOOLS = {"bwrap": "bubblewrap", "prlimit": "util-linux", "ionice": "util-linux", "nice": "coreutils"}
# Read by tools, secret to nobody.
ETC_READ_ONLY = (
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/etc/ca-certificates",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/os-release",
)
INSIDE = Path("/run/console")
# Who the package is inside its sandbox, whatever uid it has outside: the
# same for every job on every host, so that the same commit builds the same
# bytes (an sdist's tar records the owner of its files).
INSIDE_UID = 1000
INSIDE_IDS = ("--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID))
RELAY = Path(__file__).with_name("sandbox_relay.py")
# Names that never enter a sandbox's environment, whatever the caller built.
SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "DATABASE_URL", "REDIS_URL", "BROKER")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed command. CPU seconds count per
    process; the whole command's wall-clock limit is the runner's timeout."""

    cpu_seconds: int = 900
    address_space_bytes: int = 8 * GiB
    processes: int = 512
    file_size_bytes: int = 4 * GiB
    open_files: int = 4096
    tmp_bytes: int = 1 * GiB


@dataclass(frozen=True)
class SandboxPolicy:
    """What one sandboxed command may use.

    ``writable``: the job's own folder (and, while one is being made, the
    build environment it makes); ``read_only``: what the step needs besides
    (a project's cached build environment); ``env``: the exact environment
    inside; ``cwd``: where it starts, inside a mounted path; ``network``:
    the proxy's allowance, or None for no network at all.
    """

    writable: tuple[Path, ...]
    env: Mapping[str, str]
    cwd: Path
    read_only: tuple[Path, ...] = ()
    limits: Limits = field(default_factory=Limits)
    network: NetworkAllowance | None = None

    @classmethod
    def for_job(
        cls,
        job_folder: Path,
        env: Mapping[str, str],
        *,
        cwd: Path | None = None,
        read_only: Sequence[Path] = (),
        network: NetworkAllowance | None = None,
        limits: Limits | None = None,
    ) -> SandboxPolicy:
        return cls(
            writable=(Path(job_folder),),
            env=dict(env),
            cwd=Path(cwd or job_folder),
            read_only=tuple(Path(p) for p in read_only),
            limits=limits or Limits(),
            network=network,
        )


def limits_from_settings() -> Limits:
    """The operator's limits (SANDBOX_* settings)."""
    return Limits(
        cpu_seconds=settings.SANDBOX_CPU_SECONDS,
        address_space_bytes=settings.SANDBOX_MEMORY_MB << 20,
        processes=settings.SANDBOX_PROCESSES,
        file_size_bytes=settings.SANDBOX_FILE_SIZE_MB << 20,
        tmp_bytes=settings.SANDBOX_TMP_MB << 20,
    )


@dataclass(frozen=True)
class Sandbox:
    """What a command that runs package code gets besides its job's folder
    (read-write): what the tool runner takes (``runner.run(..., sandbox=)``).

    ``read_only``: what the step needs and must not change (a project's
    cached build environment); ``writable``: a folder the step makes for
    later jobs of the same project (the build environment it makes);
    ``network``: the index hosts the step reads from, through the proxy, or
    None for no network at all."""

    read_only: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()
    network: NetworkAllowance | None = None

    @property
    def summary(self) -> str:
        """What the job log says of it, beside the command."""
        if self.network is None:
            return "sandbox, no network"
        reachable = sorted(self.network.connect) + list(self.network.http_prefixes)
        return "sandbox, network only to " + ", ".join(reachable)

    def policy(self, job_folder: Path, env: Mapping[str, str], cwd: Path | None = None) -> SandboxPolicy:
        policy = SandboxPolicy.for_job(
            job_folder, env, cwd=cwd, read_only=self.read_only, network=self.network, limits=limits_from_settings()
        )
        return replace(policy, writable=(*policy.writable, *self.writable))


# A command of package code that needs nothing but its job's folder.
NO_NETWORK = Sandbox()


def index_network(urls: Sequence[str]) -> NetworkAllowance:
    """Network to these simple-index URLs only (and where PyPI keeps its
    files). The operator configured them, so a name of theirs may resolve to
    a private address (an index on the LAN); every other host stays out."""
    hosts = {(urlsplit(url).hostname or "").lower() for url in urls}
    return NetworkAllowance.for_indexes(urls, internal_hosts=hosts - {""})


@dataclass(frozen=True)
class Identity:
    """Who the package runs as. ``drop``: the worker is root, and the
    sandbox gets a real unprivileged uid of its own."""

    uid: int
    gid: int
    drop: bool


def identity_for(job_folder: Path) -> Identity:
    if os.geteuid() != 0:
        return Identity(os.getuid(), os.getgid(), drop=False)
    uid = SANDBOX_UID_BASE + zlib.crc32(str(_resolved(job_folder)).encode()) % SANDBOX_UID_SPAN
    return Identity(uid, uid, drop=True)


def check_policy(policy: SandboxPolicy) -> None:
    """Refuse a policy that would show a package what it must never see.

    No mounted path may be, or hold, the console's source tree, its var
    folder, the jobs' root, the tool cache, the artifacts or the worker's
    home; inside those, only the job's own folder and parts of the tool
    cache may be mounted, and only they may be written. No environment
    variable may carry a secret's name."""
    protected = [
        _resolved(p)
        for p in (
            settings.BASE_DIR,
            settings.VAR_DIR,
            settings.JOB_WORK_ROOT,
            settings.TOOL_CACHE_DIR,
            *_artifact_folders(),
            Path.home(),
        )
    ]
    jobs, tool_cache = _resolved(settings.JOB_WORK_ROOT), _resolved(settings.TOOL_CACHE_DIR)
    writable = [_resolved(p) for p in policy.writable]
    read_only = [_resolved(p) for p in policy.read_only]
    if not writable:
        raise StepFailed("A sandbox needs the job's folder to work in.")
    for path in writable:
        if not (_inside(path, jobs) or _inside(path, tool_cache)):
            raise StepFailed(f"The sandbox may write only in a job's folder or the tool cache, not in {path}.")
    for path in [*writable, *read_only]:
        for root in protected:
            if path == root or _inside(root, path):
                raise StepFailed(f"The sandbox may not see {path}: it holds {root}.")
        own = any(path == w or _inside(path, w) for w in writable) or _inside(path, tool_cache)
        if not own and any(_inside(path, root) for root in protected):
            raise StepFailed(f"The sandbox may not see {path}: it is the console's, or another job's.")
    for path in read_only:
        if any(_inside(path, w) for w in writable):
            # The package could have put a link there, for bwrap to follow.
            raise StepFailed(f"{path} is in a writable folder of the sandbox: it cannot be mounted read-only.")
    cwd = _resolved(policy.cwd)
    if not any(cwd == p or _inside(cwd, p) for p in [*writable, *read_only]):
        raise StepFailed(f"The sandbox's working directory {cwd} is not one of its mounted paths.")
    for name in policy.env:
        if any(marker in name.upper() for marker in SECRET_MARKERS):
            raise StepFailed(f"The environment variable {name} may not enter a sandbox.")
        if policy.network is not None and name.upper() in PROXY_VARIABLES:
            raise StepFailed(f"{name} is the sandbox's own: its network goes through the console's proxy.")


def _artifact_folders() -> list[Path]:
    """The folder that stores artifacts on this host, when they are stored
    in a folder (a bucket is nowhere on the file system)."""
    location = settings.STORAGES["artifacts"].get("OPTIONS", {}).get("location")
    return [Path(location)] if location else []


def _resolved(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _inside(path: Path, root: Path) -> bool:
    return path != root and path.is_relative_to(root)


@cache
def tool(name: str) -> str:
    found = shutil.which(name, path=SYSTEM_PATH)
    if found is None:
        raise StepFailed(f"{name} is not installed on this worker (apt-get install {TOOLS.get(name, name)}).")
    return found


def _python_roots() -> list[Path]:
    """The Python installation and the console's environment, unless they
    are under /usr already."""
    roots: list[Path] = []
    for prefix in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        path = _resolved(prefix)
        if not path.is_relative_to("/usr") and not any(path.is_relative_to(r) for r in roots):
            roots.append(path)
    return roots


def sandbox_files(identity: Identity, home: str) -> dict[str, bytes]:
    """The files made for the sandbox: its ``/etc`` (one user, localhost,
    no DNS: names are resolved by the proxy, outside)."""
    return {
        "/etc/passwd": (
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            f"sandbox:x:{INSIDE_UID}:{INSIDE_UID}:sandbox:{home}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        "/etc/group": f"root:x:0:\nsandbox:x:{INSIDE_UID}:\nnogroup:x:65534:\n".encode(),
        "/etc/hosts": b"127.0.0.1 localhost\n::1 localhost\n",
        "/etc/nsswitch.conf": b"passwd: files\ngroup: files\nhosts: files\n",
    }


def bwrap_arguments(
    policy: SandboxPolicy,
    argv: Sequence[str],
    *,
    identity: Identity,
    data_fds: Mapping[str, int],
    proxy_socket: Path | None,
) -> tuple[list[str], list[str]]:
    """The sandbox as argument lists: bwrap's options, and the command to
    give it after ``--``. ``data_fds`` maps each file made for the sandbox
    (``sandbox_files``, the relay) to the descriptor bwrap reads it from."""
    if identity.drop:
        # The outer bwrap is root: it mounts; the inner one makes the user namespace.
        args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        args = ["--unshare-all", "--unshare-user", "--disable-userns", *INSIDE_IDS]
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in policy.env.items():
        args += ["--setenv", name, value]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    # Before the policy's paths: a job's folder may be under /tmp.
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(policy.limits.tmp_bytes), "--tmpfs", "/tmp"]  # noqa: S108 (the sandbox's own)
    args += ["--perms", "1777", "--size", str(64 << 20), "--tmpfs", "/dev/shm"]  # noqa: S108 (the sandbox's own)
    mounts = [("--ro-bind", p) for p in _python_roots()]
    mounts += [("--ro-bind", Path(p)) for p in ETC_READ_ONLY if Path(p).exists()]
    mounts += [("--bind", _resolved(p)) for p in policy.writable]
    mounts += [("--ro-bind", _resolved(p)) for p in policy.read_only]
    made = {Path("/"), Path("/usr")}
    for option, path in sorted(mounts, key=lambda mount: len(mount[1].parts)):
        # bwrap 0.8 makes a mount point's missing parents 0700 (root's when
        # the outer bwrap is root); made beforehand, they are 0755.
        parent = path.parent
        if parent not in made and not any(parent.is_relative_to(other) for _, other in mounts if other != path):
            args += ["--dir", str(parent)]
            made.add(parent)
        args += [option, str(path), str(path)]
    args += ["--dir", "/etc", "--dir", str(INSIDE)]
    for dest, fd in data_fds.items():
        args += ["--perms", "0444", "--ro-bind-data", str(fd), dest]
    command = list(argv)
    if proxy_socket is not None:
        socket_inside = str(INSIDE / "proxy.sock")
        args += ["--ro-bind", str(proxy_socket), socket_inside]
        command = [sys.executable, "-I", "-S", str(INSIDE / "relay.py"), socket_inside, "--", *command]
    cwd = str(_resolved(policy.cwd))
    # As root without capabilities, the outer bwrap may not enter a folder
    # that is the sandbox uid's alone: the inner one goes there.
    args += ["--chdir", "/" if identity.drop else cwd]
    if identity.drop:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        drop = [tool("setpriv"), f"--reuid={identity.uid}", f"--regid={identity.gid}", "--clear-groups"]
        drop += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        inner = [tool("bwrap"), "--unshare-user", "--disable-userns", *INSIDE_IDS, "--die-with-parent"]
        inner += ["--dev-bind", "/", "/", "--chdir", cwd, "--"]
        command = [*drop, *inner, *command]
    return args, command


def wrapper_argv(limits: Limits, identity: Identity, args_fd: int, command: Sequence[str]) -> list[str]:
    """What the worker runs: nice, ionice and prlimit around bwrap, which
    reads its options from ``args_fd``, then ``command``."""
    processes = limits.processes
    if not identity.drop:
        # RLIMIT_NPROC counts every task of the uid, the worker's own too.
        processes += tasks_of(os.getuid())
    return [
        *(tool("nice"), "-n", "10", tool("ionice"), "-c", "2", "-n", "7", tool("prlimit")),
        f"--cpu={limits.cpu_seconds}",
        f"--as={limits.address_space_bytes}",
        f"--nproc={processes}",
        f"--fsize={limits.file_size_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
        *(tool("bwrap"), "--args", str(args_fd), "--", *command),
    ]


def hand_over(folder: Path, identity: Identity) -> None:
    """Give ``folder`` and what is in it to the sandbox's uid, so that it
    can write there and needs nobody else's permissions.

    Walks by descriptor and never follows a symbolic link: what a sandbox
    left in the folder is the package's. A folder that is the sandbox's
    already (made by it, or handed over before) is not walked again, so the
    second command of a job does not pay for the first one's environment:
    what the worker adds later it adds beside those (a clone, a requirements
    file), and that is handed over."""
    if not identity.drop:
        return
    owner = (identity.uid, identity.gid)
    os.chown(folder, *owner, follow_symlinks=False)
    for _, dirs, files, dirfd in os.fwalk(folder, follow_symlinks=False):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                if (st.st_uid, st.st_gid) != owner:
                    os.chown(name, *owner, dir_fd=dirfd, follow_symlinks=False)
        for name in list(dirs):
            try:
                st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                dirs.remove(name)
                continue
            if (st.st_uid, st.st_gid) == owner:
                dirs.remove(name)
            else:
                os.chown(name, *owner, dir_fd=dirfd, follow_symlinks=False)


def _memfd(name: str, data: bytes) -> int:
    """A file in memory holding ``data``, for bwrap to read (a pipe could
    fill before bwrap starts reading)."""
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class SandboxedCommand:
    """What the runner starts: ``argv`` with ``env`` in ``cwd``, passing
    ``pass_fds``; then, at once, ``watch(pid, stop)``. ``sandboxed`` is
    False only under the operator's opt-out."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    pass_fds: tuple[int, ...]
    sandboxed: bool
    limits: Limits
    watchdog: Watchdog | None = None

    def watch(self, pid: int, stop: Callable[[str], object]) -> None:
        """Close the descriptors bwrap reads (the child has its copies) and
        start the watchdog. ``stop(reason)`` must kill the process group of
        ``pid``: bwrap's death takes the whole sandbox with it."""
        self.close_fds()
        if self.sandboxed:
            self.watchdog = Watchdog(pid, self.limits.processes, stop)
            self.watchdog.start()

    def close_fds(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pass_fds = ()

    @property
    def stopped_reason(self) -> str | None:
        """Why the watchdog stopped it, if it did."""
        return self.watchdog.reason if self.watchdog else None


@contextlib.contextmanager
def sandboxed(
    policy: SandboxPolicy, argv: Sequence[str], *, report: Callable[[str], object]
) -> Iterator[SandboxedCommand]:
    """The command to start for ``argv`` under ``policy``, with its proxy
    running for as long as the block.

    1. Under the operator's opt-out, ``argv`` as it is, with the policy's
       environment, said in ``report``.
    2. Refuse a host where the sandbox does not work, and a policy that
       reaches the console's own files or secrets.
    3. Hand the writable paths over to the sandbox's uid.
    4. Start the proxy, with a network allowance, on a socket in a private
       folder (never in the job's, where the package could put a link);
       ``report`` receives a line for each of its requests.
    5. Put the sandbox's files and bwrap's options into memory files.
    6. On leaving: stop the watchdog and the proxy, close the descriptors.
    """
    if settings.UNSAFE_UNSANDBOXED_BUILDS:
        report("sandbox: OFF (CONSOLE_UNSAFE_UNSANDBOXED_BUILDS): package code runs with the worker's rights")
        yield SandboxedCommand(list(argv), dict(policy.env), Path(policy.cwd), (), False, policy.limits)
        return
    status = sandbox_status()
    if not status.usable:
        raise StepFailed(f"Package code runs only in a sandbox, and it does not work on this worker: {status.reason}")
    check_policy(policy)
    identity = identity_for(policy.writable[0])
    for path in policy.writable:
        hand_over(_resolved(path), identity)
    with _prepared(policy, argv, identity, report) as command:
        yield command


@contextlib.contextmanager
def _prepared(
    policy: SandboxPolicy, argv: Sequence[str], identity: Identity, report: Callable[[str], object]
) -> Iterator[SandboxedCommand]:
    fds: list[int] = []
    proxy: SandboxProxy | None = None
    private: str | None = None
    command: SandboxedCommand | None = None
    try:
        files = sandbox_files(identity, policy.env.get("HOME", "/nonexistent"))
        if policy.network is not None:
            files[str(INSIDE / "relay.py")] = RELAY.read_bytes()
            private = tempfile.mkdtemp(prefix="console-sandbox-")
            proxy = SandboxProxy(Path(private) / "proxy.sock", policy.network, lambda event: report(event.line))
            proxy.start()
        data_fds = {dest: _memfd(Path(dest).name, data) for dest, data in files.items()}
        fds += data_fds.values()
        options, inside = bwrap_arguments(
            policy, argv, identity=identity, data_fds=data_fds, proxy_socket=proxy.socket_path if proxy else None
        )
        fds.append(_memfd("bwrap-options", b"".join(option.encode() + b"\0" for option in options)))
        command = SandboxedCommand(
            argv=wrapper_argv(policy.limits, identity, fds[-1], inside),
            env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
            cwd=Path("/"),
            pass_fds=tuple(fds),
            sandboxed=True,
            limits=policy.limits,
        )
        yield command
    finally:
        if command is not None and command.watchdog is not None:
            command.watchdog.close()
        for fd in command.pass_fds if command is not None else fds:
            os.close(fd)
        if proxy is not None:
            proxy.stop()
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


@dataclass(frozen=True)
class SandboxStatus:
    usable: bool
    reason: str


def sandbox_status() -> SandboxStatus:
    """Whether the sandbox works on this host, and why not: the tools are
    installed, and a sandboxed Python starts in a PID namespace of its own
    (which needs user namespaces, and as root setpriv). Found out once per
    process."""
    return _probe()


@cache
def _probe() -> SandboxStatus:
    if sys.platform != "linux":
        return SandboxStatus(False, f"the sandbox needs Linux (bubblewrap), not {sys.platform}")
    try:
        for name in [*TOOLS, *(["setpriv"] if os.geteuid() == 0 else [])]:
            tool(name)
    except StepFailed as exc:
        return SandboxStatus(False, str(exc))
    with tempfile.TemporaryDirectory(prefix="console-sandbox-probe-") as folder:
        identity = identity_for(Path(folder))
        hand_over(Path(folder), identity)
        policy = SandboxPolicy.for_job(Path(folder), {"PATH": SYSTEM_PATH}, limits=Limits(processes=64))
        argv = [sys.executable, "-I", "-S", "-c", "import os; print(os.getpid())"]
        with _prepared(policy, argv, identity, lambda line: None) as command:
            try:
                result = subprocess.run(
                    command.argv,
                    env=command.env,
                    cwd=command.cwd,
                    pass_fds=command.pass_fds,
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return SandboxStatus(False, f"bwrap did not run: {exc}")
    said = (result.stderr.strip().splitlines() or ["no message"])[-1]
    if result.returncode != 0:
        return SandboxStatus(False, f"bwrap exited with status {result.returncode}: {said}")
    if not result.stdout.strip().isdigit() or int(result.stdout) > 5:
        return SandboxStatus(False, f"the sandboxed process is not in a PID namespace of its own ({result.stdout!r})")
    how = "a uid of its own per job" if identity.drop else "the worker's own uid"
    return SandboxStatus(True, f"bubblewrap, as {how}")
