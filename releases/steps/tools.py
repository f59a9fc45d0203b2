"""Where the external tools are, found once per process."""

from __future__ import annotations

import shutil
import sys
from functools import cache

import uv


@cache
def uv_bin() -> str:
    return uv.find_uv_bin()


@cache
def git_bin() -> str:
    found = shutil.which("git")
    if found is None:
        raise RuntimeError("git is not installed on this worker")
    return found


def python_bin() -> str:
    return sys.executable
