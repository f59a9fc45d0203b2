#!/usr/bin/env python3
"""Download the files the release console approved, and check each one.

The publishing workflow (docs/publish.yml) runs this before it publishes
anything. The console's dispatch passes two inputs, which the workflow
hands over in the environment (never pasted into the script):

  APPROVED_FILES  one "sha256  filename" line per approved file (the lines
                  ``sha256sum --check`` reads), as the approvers saw them;
  FILES_URL       the console's signed, single-use link; each file is
                  downloaded from it followed by its filename.

Every file is downloaded into a folder of its own and its sha256 compared
with the approved one. Only when all of them match are they moved into the
output folder (``dist/`` by default); otherwise nothing is left there, the
reason is printed, and the exit status is 1: the publish step never runs.

Copy this file into the project's repository as .github/fetch_approved.py.
It needs Python 3.9 or later and nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

# A filename PyPI takes: no folder, no leading dot or dash.
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.(whl|tar\.gz|zip)$")
LINE = re.compile(r"^([0-9a-f]{64}) [ *]?(\S+)$")
CHUNK = 1 << 20


class Refused(Exception):
    """Something that stops the publication; the message says what."""


def approved_files(text: str) -> list[tuple[str, str]]:
    """The (sha256, filename) pairs of APPROVED_FILES."""
    files = []
    for number, raw in enumerate(text.strip().splitlines(), start=1):
        line = raw.strip()
        match = LINE.match(line)
        if match is None or not FILENAME.match(match.group(2)):
            raise Refused(f"line {number} of APPROVED_FILES is not 'sha256  filename': {line[:120]!r}")
        files.append((match.group(1), match.group(2)))
    if not files:
        raise Refused("APPROVED_FILES is empty: the dispatch named no file to publish")
    if len({name for _, name in files}) != len(files):
        raise Refused("APPROVED_FILES names a file twice")
    return files


def download(url: str, target: Path, *, timeout: float) -> str:
    """Write ``url`` to ``target``; its sha256."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "release-console-fetch-approved/1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:  # noqa: S310
            for chunk in iter(lambda: response.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        said = exc.read(500).decode("utf-8", "replace").strip()
        raise Refused(f"the console answered {exc.code} for {target.name}: {said}") from None
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError) as exc:
        raise Refused(f"{target.name} could not be downloaded: {exc}") from None
    return digest.hexdigest()


def fetch(files_url: str, approved: list[tuple[str, str]], out: Path, *, timeout: float = 60) -> list[Path]:
    """Download every approved file, check it, and only then put them all in ``out``."""
    parts = urlsplit(files_url)
    if parts.scheme not in ("https", "http") or not parts.netloc or not files_url.endswith("/"):
        raise Refused("FILES_URL is not the console's link (https://…/publish-files/…/)")
    if out.exists() and any(out.iterdir()):
        raise Refused(f"{out} is not empty: only the approved files may be published from it")
    with tempfile.TemporaryDirectory(prefix="approved-") as folder:
        checked = []
        for sha256, filename in approved:
            target = Path(folder) / filename
            got = download(files_url + quote(filename), target, timeout=timeout)
            if got != sha256:
                raise Refused(f"{filename} has sha256 {got}, not the approved {sha256}: not publishing anything")
            print(f"{filename}: sha256 {got} as approved")
            checked.append(target)
        out.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.move(str(path), out / path.name)) for path in checked]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dist", help="where the checked files go (default: dist)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a download may stall")
    options = parser.parse_args(argv)
    try:
        approved = approved_files(os.environ.get("APPROVED_FILES", ""))
        files = fetch(os.environ.get("FILES_URL", ""), approved, Path(options.out), timeout=options.timeout)
    except Refused as refused:
        print(f"::error::Refused: {refused}", file=sys.stderr)
        return 1
    print(f"{len(files)} approved files in {options.out}, each with its approved sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())
