"""A repository's tags, asked of git without cloning (``git ls-remote``):
for the project page's "create a release from this tag" buttons. It runs no
code of the project's; the same transport rules as the build's clone."""

from __future__ import annotations

import os
import subprocess

from releases.errors import StepFailed
from releases.steps.tools import git_bin

TIMEOUT = 20


def remote_tags(source: str) -> list[str]:
    """The tag names of the repository at ``source`` (a git URL or a local
    path), as git lists them; StepFailed with git's own words if it cannot."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.devnull,
        "LANG": "C.UTF-8",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        # Only these transports: never ext:: or fd:: that run commands.
        "GIT_ALLOW_PROTOCOL": "file:https:http:ssh:git",
    }
    try:
        done = subprocess.run(
            [git_bin(), "ls-remote", "--tags", "--refs", "--", source],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise StepFailed(f"git could not list the tags of {source} within {TIMEOUT} s.") from None
    if done.returncode != 0:
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "")
        raise StepFailed(f"git could not list the tags of {source}: {last or f'exit {done.returncode}'}")
    tags = []
    for line in done.stdout.splitlines():
        _, _, ref = line.partition("\t")
        if ref.startswith("refs/tags/"):
            tags.append(ref.removeprefix("refs/tags/"))
    return tags
