"""Tiny real packages built with uv, and real twine uploads, for the tests of
PyPI's upload rules."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from releases.steps.tools import uv_bin

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = {summary}
readme = {{file = "README", content-type = "{readme_type}"}}
classifiers = {classifiers}

[tool.setuptools.package-data]
"*" = ["*.bin"]
"""

SETUP_PY_WITH_EXTENSION = """\
from setuptools import Extension, setup

setup(ext_modules=[Extension("{module}._speed", ["src/{module}/speed.c"])])
"""

EXTENSION_C = """\
#include <Python.h>
static struct PyModuleDef speed = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&speed); }
"""


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path

    @property
    def paths(self) -> list[Path]:
        return [self.sdist, self.wheel]


def build_package(
    root: Path,
    name: str = "sample-pkg",
    version: str = "1.0",
    *,
    summary: str = "A tiny package for PyPI's rules.",
    readme: str = "# Sample\n\nHello.\n",
    readme_type: str = "text/markdown",
    classifiers: tuple[str, ...] = (),
    extension: bool = False,
    data_bytes: int = 0,
) -> Built:
    """Build an sdist and a wheel with ``uv build`` (setuptools). With
    ``extension``, a C extension: the wheel is tagged for this machine
    (``cp311-cp311-linux_x86_64``). ``data_bytes`` of random data make it big."""
    source = root / f"src-{name}-{version}"
    module = name.replace("-", "_").replace(".", "_")
    package = source / "src" / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (source / "README").write_text(readme)
    (source / "pyproject.toml").write_text(
        PYPROJECT.format(
            name=name,
            version=version,
            summary=json.dumps(summary),
            readme_type=readme_type,
            classifiers=json.dumps(list(classifiers)),
        )
    )
    if extension:
        (source / "setup.py").write_text(SETUP_PY_WITH_EXTENSION.format(module=module))
        (package / "speed.c").write_text(EXTENSION_C)
    if data_bytes:
        (package / "data.bin").write_bytes(os.urandom(data_bytes))
    out = root / f"dist-{name}-{version}"
    subprocess.run(
        [uv_bin(), "build", "--python", sys.executable, "--sdist", "--wheel", "--out-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        env={**os.environ, "UV_SYSTEM_CERTS": "1"},
        timeout=300,
    )
    return Built(sdist=next(out.glob("*.tar.gz")), wheel=next(out.glob("*.whl")))


def rewrite_wheel_metadata(wheel: Path, edit: Callable[[str], str]) -> None:
    """Change a built wheel's METADATA in place, its RECORD line with it,
    as a back-end writing other metadata would have."""
    with zipfile.ZipFile(wheel) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    metadata_name = next(n for n in members if n.endswith(".dist-info/METADATA"))
    record_name = next(n for n in members if n.endswith(".dist-info/RECORD"))
    members[metadata_name] = edit(members[metadata_name].decode()).encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(members[metadata_name]).digest()).rstrip(b"=").decode()
    record = [
        f"{metadata_name},sha256={digest},{len(members[metadata_name])}"
        if line.startswith(metadata_name + ",")
        else line
        for line in members[record_name].decode().splitlines()
    ]
    members[record_name] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


@dataclass(frozen=True)
class TwineRun:
    returncode: int
    output: str


def twine_upload(upload_url: str, token: str, *paths: Path, username: str = "__token__") -> TwineRun:
    """``python -m twine upload`` as the console runs it: the credential in
    the environment only, one line per message (no wrapping, no colour)."""
    env = {
        **os.environ,
        "TWINE_USERNAME": username,
        "TWINE_PASSWORD": token,
        "TWINE_NON_INTERACTIVE": "1",
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        "COLUMNS": "1000",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "twine",
            "--no-color",
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            upload_url,
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return TwineRun(result.returncode, " ".join((result.stdout + result.stderr).split()))
