"""Validation of what people and tools hand to the console.

Each function returns the cleaned value or raises ``ValidationError`` with
a sentence a person can act on. Commands, forms and webhooks share them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# PEP 508 / core metadata: letters, digits, and . _ - inside.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
# Git ref names (git check-ref-format), narrowed further: nothing a shell or
# git's option parser could take for something else.
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+@-]{0,249}$")
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")


def clean_project_name(raw: str) -> str:
    if not _PROJECT_NAME.match(raw):
        raise ValidationError(
            f"{raw!r} is not a valid project name: use letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit."
        )
    return canonicalize_name(raw)


def clean_version(raw: str) -> str:
    try:
        version = Version(raw)
    except InvalidVersion:
        raise ValidationError(f"{raw!r} is not a PEP 440 version (for example 1.4.0 or 2.0.0rc1).") from None
    if str(version) != raw:
        raise ValidationError(f"{raw!r} is not normalized: write it as {str(version)!r}.")
    return raw


def clean_ref(raw: str) -> str:
    if not _REF.match(raw) or ".." in raw or raw.endswith((".lock", "/", ".")) or "//" in raw or "@{" in raw:
        raise ValidationError(
            f"{raw!r} is not a usable git ref: use a tag, branch or commit name made of letters, digits "
            "and . _ / + @ -, not starting with '-'."
        )
    return raw


def clean_http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValidationError(f"{raw!r} is not an http or https URL.")
    if parts.username or parts.password:
        raise ValidationError("Put credentials in a token file, not in the URL.")
    return raw


def clean_github_repository(raw: str) -> str:
    if not _GITHUB_REPOSITORY.match(raw):
        raise ValidationError(f"{raw!r} is not a GitHub repository: write it as owner/name.")
    return raw


def clean_source(raw: str) -> str:
    """A git URL (https, ssh, git, file) or a local path; never an ext:: transport."""
    if not raw or raw.startswith("-") or any(ch.isspace() for ch in raw) or "::" in raw:
        raise ValidationError(f"{raw!r} is not a git URL or a local path.")
    scheme = urlsplit(raw).scheme
    if scheme and scheme not in {"https", "http", "ssh", "git", "file"} and not raw.startswith("git@"):
        raise ValidationError(f"{raw!r}: only https, ssh, git and file sources are allowed.")
    return raw
