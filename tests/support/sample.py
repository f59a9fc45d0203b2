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


class SampleRepo:
    """A git repository holding a tiny setuptools package."""

    def __init__(self, path: Path, name: str = "sample-pkg") -> None:
        self.path = path
        self.name = name
        self.module = name.replace("-", "_")
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "--quiet", "--initial-branch=main")

    def commit_version(
        self,
        version: str,
        *,
        tag: str | None = None,
        readme: str = "# Sample\n\nHello.\n",
        readme_file: str = "README.md",
        dependencies: list[str] | None = None,
        body: str = "",
    ) -> str:
        deps = ", ".join(f'"{d}"' for d in dependencies or [])
        content_type = "text/x-rst" if readme_file.endswith(".rst") else "text/markdown"
        (self.path / "pyproject.toml").write_text(
            PYPROJECT.format(
                name=self.name,
                version=version,
                dependencies=deps,
                readme_file=readme_file,
                content_type=content_type,
            )
        )
        for old in self.path.glob("README.*"):
            old.unlink()
        (self.path / readme_file).write_text(readme)
        package = self.path / "src" / self.module
        package.mkdir(parents=True, exist_ok=True)
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
