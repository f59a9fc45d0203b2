"""Sample packages in real git repositories, made by the tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
version = "{version}"
description = "A sample package for the release console's tests."
readme = {{file = "{readme_file}", content-type = "{content_type}"}}
requires-python = ">=3.8"
dependencies = [{dependencies}]
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={
            "GIT_AUTHOR_NAME": "Tester",
            "GIT_AUTHOR_EMAIL": "t@example.org",
            "GIT_COMMITTER_NAME": "Tester",
            "GIT_COMMITTER_EMAIL": "t@example.org",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(repo),
            "PATH": "/usr/bin:/bin",
        },
    ).stdout.strip()


SETUP_PY_WITH_EXTENSION = """\
from setuptools import Extension, setup

setup(ext_modules=[Extension("{module}._speed", ["src/{module}/speed.c"])])
"""

# A C extension that links nothing beyond libc: auditwheel can tag it for the
# oldest manylinux policy, and the package imports it, so that an install
# that works proves the compiled code loads.
EXTENSION_C = """\
#include <Python.h>
static PyObject *twice(PyObject *self, PyObject *arg) {
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLong(2 * value);
}
static PyMethodDef methods[] = {{"twice", twice, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef speed = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&speed); }
"""


class SampleRepo:
    """A git repository holding a tiny setuptools package (at its root, or in
    ``subdirectory`` as in a monorepo; a repository may hold several)."""

    def __init__(self, path: Path, name: str = "sample-pkg", *, subdirectory: str = "") -> None:
        self.path = path
        self.name = name
        self.module = name.replace("-", "_")
        self.subdirectory = subdirectory
        self.package_root = path / subdirectory if subdirectory else path
        path.mkdir(parents=True, exist_ok=True)
        if not (path / ".git").exists():
            git(path, "init", "--quiet", "--initial-branch=main")

    def beside(self, name: str, subdirectory: str) -> SampleRepo:
        """Another package in the same repository."""
        return SampleRepo(self.path, name, subdirectory=subdirectory)

    def commit_version(
        self,
        version: str,
        *,
        tag: str | None = None,
        readme: str = "# Sample\n\nHello.\n",
        readme_file: str = "README.md",
        dependencies: list[str] | None = None,
        body: str = "",
        extension: bool = False,
    ) -> str:
        deps = ", ".join(f'"{d}"' for d in dependencies or [])
        content_type = "text/x-rst" if readme_file.endswith(".rst") else "text/markdown"
        root = self.package_root
        root.mkdir(parents=True, exist_ok=True)
        (root / "pyproject.toml").write_text(
            PYPROJECT.format(
                name=self.name,
                version=version,
                dependencies=deps,
                readme_file=readme_file,
                content_type=content_type,
            )
        )
        for old in root.glob("README.*"):
            old.unlink()
        (root / readme_file).write_text(readme)
        package = root / "src" / self.module
        package.mkdir(parents=True, exist_ok=True)
        if extension:
            (root / "setup.py").write_text(SETUP_PY_WITH_EXTENSION.format(module=self.module))
            (package / "speed.c").write_text(EXTENSION_C)
            body = "from ._speed import twice\n" + body
        (package / "__init__.py").write_text(f'__version__ = "{version}"\n{body}')
        git(self.path, "add", "-A")
        git(self.path, "commit", "--quiet", "-m", f"version {version}")
        if tag:
            git(self.path, "tag", tag)
        return git(self.path, "rev-parse", "HEAD")


def build_wheel(repo: SampleRepo, out: Path) -> Path:
    """Build ``repo``'s wheel with uv, as a maintainer would, and return its path."""
    import os

    from releases.steps.tools import uv_bin

    before = set(out.glob("*.whl")) if out.exists() else set()
    subprocess.run(
        [uv_bin(), "build", "--wheel", "--out-dir", str(out), str(repo.path)],
        check=True,
        capture_output=True,
        env={**os.environ, "UV_SYSTEM_CERTS": "1"},
    )
    (made,) = set(out.glob("*.whl")) - before
    return made
