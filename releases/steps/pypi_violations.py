"""What a check of PyPI's upload rules returns: the rule, the file, PyPI's
own answer, and one line a person can act on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from releases.steps.distfiles import DistFile


class Rule(StrEnum):
    CREDENTIAL = "credential"
    PROJECT_OWNER = "project-owner"
    PROJECT_NAME = "project-name"
    METADATA = "metadata"
    DESCRIPTION = "description"
    FILENAME = "filename"
    FILE_SIZE = "file-size"
    PROJECT_SIZE = "project-size"
    FILE_EXISTS = "file-exists"
    FILENAME_REUSED = "filename-reused"
    RELEASE_CLOSED = "release-closed"
    ONE_SDIST = "one-sdist"
    DISTRIBUTION = "distribution"
    PLATFORM_TAG = "platform-tag"
    LICENSE_FILE = "license-file"


@dataclass(frozen=True)
class Violation:
    """One rule a file (or the release, when ``filename`` is None) breaks."""

    rule: Rule
    filename: str | None
    message: str  # what is wrong and what to do, for a person
    pypi_status: int  # what PyPI answers the upload
    pypi_message: str

    def __str__(self) -> str:
        return self.message


def violation(rule: Rule, dist: DistFile, advice: str, pypi_message: str, status: int = 400) -> Violation:
    """A file's violation: its message starts with the filename."""
    return Violation(rule, dist.filename, f"{dist.filename}: {advice}", status, pypi_message)
