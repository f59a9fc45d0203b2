"""Wheels with compiled code, repaired to a platform tag PyPI accepts.

A wheel built on a worker is tagged for "this Linux" (``linux_x86_64``),
which promises nothing about the C library it needs, and PyPI refuses it.
``auditwheel repair`` reads the wheel's ELF files, copies in the external
shared libraries they load, and tags the wheel with the manylinux policy
of this machine that its symbols allow (``auditwheel``'s "auto"), the tag
PyPI takes.

auditwheel reads the wheel's files and rewrites them with patchelf; it runs
none of the package's code, and it runs where the build's other tools do.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from releases.errors import StepFailed
from releases.steps import pypi_platforms, runner
from releases.steps.tools import python_bin
from releases.steps.workspace import Workspace


@dataclass(frozen=True)
class RepairedWheel:
    """A wheel auditwheel made, and the one it was made from."""

    path: Path
    original: str  # the filename the build gave
    original_sha256: str


def needs_repair(wheel: Path) -> bool:
    """Whether ``wheel`` carries a platform tag only its own kind of machine
    understands (``linux_*``), which auditwheel can replace."""
    try:
        _, _, _, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename:
        return False
    return any(tag.platform.startswith("linux_") for tag in tags)


def repair_wheels(ws: Workspace, wheels: list[Path], out: Path) -> list[RepairedWheel]:
    """``auditwheel repair`` each wheel that needs it, into ``out``.

    1. Wheels without a ``linux_*`` tag are left as they are (pure Python,
       or already manylinux).
    2. Each other wheel is repaired to the machine's policy; one it cannot
       repair (a library newer than any manylinux policy, say) fails the
       build with auditwheel's reason.
    3. The repaired wheel must carry only tags PyPI accepts.
    """
    repaired = []
    for wheel in wheels:
        if not needs_repair(wheel):
            continue
        target = out / wheel.name.removesuffix(".whl")
        shutil.rmtree(target, ignore_errors=True)
        ws.step(f"repairing {wheel.name} with auditwheel (manylinux)")
        result = runner.run(
            ws,
            [python_bin(), "-m", "auditwheel", "repair", "--wheel-dir", str(target), str(wheel)],
            show=["auditwheel", "repair", "--wheel-dir", "dist/repaired", wheel.name],
            check=False,
            prefix="[auditwheel] ",
        )
        made = sorted(target.glob("*.whl")) if target.is_dir() else []
        if result.returncode != 0 or len(made) != 1:
            said = next((line.strip() for line in reversed(result.tail) if line.strip()), "no reason given")
            raise StepFailed(
                f"auditwheel could not repair {wheel.name}: {said[:300]}. PyPI refuses linux_ wheels: fix what "
                "auditwheel names, or collect manylinux wheels from CI; turn wheel repair off for this project "
                "only to publish to private indexes."
            )
        refused = sorted(
            {tag.platform for tag in parse_wheel_filename(made[0].name)[3] if not pypi_platforms.accepted(tag.platform)}
        )
        if refused:
            raise StepFailed(f"auditwheel made {made[0].name}, whose tags PyPI refuses ({', '.join(refused)}).")
        ws.log.write(f"{wheel.name} repaired as {made[0].name}")
        repaired.append(RepairedWheel(made[0], wheel.name, runner.sha256_file(wheel)))
    return repaired
