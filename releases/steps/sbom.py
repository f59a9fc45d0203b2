"""The SBOM step: a CycloneDX 1.6 JSON document of what the verify
environment holds (the package and its resolved runtime dependencies)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from releases.errors import StepFailed
from releases.steps import runner, untrusted
from releases.steps.sandbox import NO_NETWORK
from releases.steps.tools import python_bin
from releases.steps.workspace import Workspace

SPEC_VERSION = "1.6"
PREFIX = "[sbom] "
SBOM_LIMIT = 64 << 20


def make_sbom(ws: Workspace, venv_python: Path) -> dict[str, Any]:
    """Run cyclonedx-py on the environment of ``venv_python`` and read its
    output. It touches no database, so it can run in a thread beside the
    job's other steps; its log lines start with ``[sbom]``."""
    output = ws.workdir / "sbom.cdx.json"
    # Reference: https://cyclonedx-bom-tool.readthedocs.io/en/latest/usage.html#for-python-virtual-environment
    runner.run(
        ws,
        [
            python_bin(),
            # Isolated: the job's folder, where it starts, is the package's.
            "-I",
            "-m",
            "cyclonedx_py",
            "environment",
            str(venv_python),
            "--spec-version",
            SPEC_VERSION,
            "--output-format",
            "JSON",
            "--output-reproducible",
            # cyclonedx-py's self-check of its own output against the schema
            # takes 2 s of the 2.5 s here (an Earley parse of every URL); the
            # test suite validates the documents this step makes instead.
            "--no-validate",
            "--output-file",
            str(output),
        ],
        show=[
            "cyclonedx-py",
            "environment",
            "venv/bin/python",
            "--spec-version",
            SPEC_VERSION,
            "--output-format",
            "JSON",
        ],
        prefix=PREFIX,
        # It runs the environment's Python, and with it the packages' .pth files.
        sandbox=NO_NETWORK,
    )
    try:
        written = untrusted.read_file(ws.workdir, output.name, limit=SBOM_LIMIT)
        document: dict[str, Any] = json.loads(written)
    except (StepFailed, ValueError) as exc:
        raise StepFailed(f"cyclonedx-py wrote no readable SBOM: {exc}") from None
    if not isinstance(document, dict):
        raise StepFailed("cyclonedx-py wrote something that is not a CycloneDX 1.6 document.")
    if document.get("bomFormat") != "CycloneDX" or document.get("specVersion") != SPEC_VERSION:
        raise StepFailed("cyclonedx-py wrote something that is not a CycloneDX 1.6 document.")
    ws.log.write(f"{PREFIX}SBOM: {len(document.get('components', []))} components")
    return document
