"""Validation of what people and tools hand to the console.

Each function returns the cleaned value or raises ``ValidationError`` with
a sentence a person can act on. Commands, forms and webhooks share them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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


def clean_glob(raw: str, *, example: str = "v*.*.*") -> str:
    """A shell-style pattern for tags or refs: no white space, no empty pattern."""
    if not raw or any(ch.isspace() for ch in raw):
        raise ValidationError(f"{raw!r} is not a pattern (for example {example}).")
    return raw


def clean_workflow_file(raw: str) -> str:
    if not raw or "/" in raw or not raw.endswith((".yml", ".yaml")):
        raise ValidationError(f"{raw!r} is not a workflow file name (for example publish.yml).")
    return raw


def clean_url_template(raw: str) -> str:
    """A project page address with {name} and {version}, e.g. https://pypi.org/project/{name}/{version}/."""
    try:
        filled = raw.format(name="sample", version="1.0")
    except (KeyError, IndexError, ValueError):
        raise ValidationError(f"{raw!r} may only hold {{name}} and {{version}}.") from None
    clean_http_url(filled)
    return raw


def clean_subdirectory(raw: str) -> str:
    """A folder inside the repository, written relative to its root (``packages/core``)."""
    parts = raw.split("/")
    if (
        not raw
        or raw.startswith(("/", "-"))
        or "\\" in raw
        or any(part in ("", ".", "..") for part in parts)
        or not all(re.fullmatch(r"[A-Za-z0-9._+-]+", part) for part in parts)
    ):
        raise ValidationError(
            f"{raw!r} is not a folder of the repository: write it relative to the repository's root, "
            "for example packages/core (letters, digits and . _ + -, no '..')."
        )
    return raw


def field_errors(checks: dict[str, Callable[[], object]]) -> None:
    """Run each field's check; raise one ValidationError naming every field that failed."""
    errors: dict[str, list[str]] = {}
    for field, check in checks.items():
        try:
            check()
        except ValidationError as exc:
            errors[field] = exc.messages
    if errors:
        raise ValidationError(errors)


def version_from_tag(tag: str) -> str:
    """The normalized PEP 440 version a tag names: ``v1.2.0`` → ``1.2.0``,
    ``core-v2.0`` → ``2.0``, ``release-1.0`` → ``1.0`` (the longest end of
    the tag, after a ``-``, ``_`` or ``/`` and an optional ``v``, that is a
    version)."""
    starts = [0, *[i + 1 for i, ch in enumerate(tag) if ch in "-_/"]]
    for start in starts:
        raw = tag[start:]
        raw = raw[1:] if raw[:1] in ("v", "V") else raw
        try:
            return str(Version(raw))
        except InvalidVersion:
            continue
    raise ValidationError(f"The tag {tag!r} does not name a PEP 440 version (for example v1.2.0).")
