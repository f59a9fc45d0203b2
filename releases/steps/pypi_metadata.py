"""PyPI's rules on what a file's metadata says: packaging's validation, the
checks warehouse adds (``forklift/metadata.py``), and the long description,
rendered as warehouse renders it on upload (``utils/readme.py``)."""

from __future__ import annotations

import io
from email.message import EmailMessage
from typing import cast

from packaging.metadata import InvalidMetadata, Metadata, RawMetadata
from packaging.version import Version
from readme_renderer import markdown, rst, txt
from trove_classifiers import all_classifiers, deprecated_classifiers

from releases.steps.distfiles import DistFile, twine_name
from releases.steps.pypi_violations import Rule, Violation, violation

SUPPORTED_METADATA_VERSIONS = {"1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"}
CORE_METADATA_URL = "https://packaging.python.org/specifications/core-metadata"
LOCAL_VERSION_URL = (
    "https://packaging.python.org/en/latest/specifications/version-specifiers/#local-version-identifiers"
)
# The order in which warehouse picks the one metadata error it reports.
METADATA_ERROR_ORDER = ["metadata-version", "name", "version"]


def parse_metadata(dist: DistFile) -> Metadata | list[Violation]:
    """The metadata twine sends, validated by packaging and by warehouse's own
    rules; every error, the one PyPI reports first."""
    raw = dict(cast(dict[str, object], dist.metadata))
    raw["name"] = twine_name(str(raw.get("name", "")))
    if Version(str(raw.get("metadata_version") or "0")) < Version("2.4"):
        raw.pop("license_files", None)  # twine drops them below 2.4
    try:
        meta = Metadata.from_raw(cast(RawMetadata, raw))
    except ExceptionGroup as group:
        errors = [e for e in group.exceptions if isinstance(e, InvalidMetadata)]
        return _metadata_violations(dist, errors)
    return _metadata_violations(dist, warehouse_metadata_errors(meta)) or meta


def warehouse_metadata_errors(meta: Metadata) -> list[InvalidMetadata]:
    """forklift/metadata.py ``_validate_metadata``, less the e-mail and URL syntax checks."""
    errors = []
    if meta.metadata_version not in SUPPORTED_METADATA_VERSIONS:
        errors.append(InvalidMetadata("metadata-version", f"{meta.metadata_version!r} is not a valid metadata version"))
    if meta.version.local:
        errors.append(InvalidMetadata("version", f"The use of local versions in '{meta.version}' is not allowed."))
    if meta.summary is not None and len(meta.summary) > 512:
        errors.append(InvalidMetadata("summary", "'summary' field must be 512 characters or less."))
    classifiers = set(meta.classifiers or [])
    for classifier in sorted(classifiers - set(all_classifiers)):
        errors.append(InvalidMetadata("classifier", f"{classifier!r} is not a valid classifier."))
    for classifier in sorted(classifiers & deprecated_classifiers.keys()):
        instead = deprecated_classifiers[classifier]
        said = f"The classifier {classifier!r} has been deprecated"
        errors.append(
            InvalidMetadata("classifier", f"{said}, use one of {instead} instead." if instead else f"{said}.")
        )
    for requirement in meta.requires_dist or []:
        if requirement.url is not None:
            errors.append(InvalidMetadata("requires-dist", f"Can't have direct dependency: {requirement}"))
    if meta.license and meta.license_expression:
        errors.append(
            InvalidMetadata(
                "license",
                "License is deprecated when License-Expression is present. Only License-Expression should be present.",
            )
        )
    return errors


METADATA_ADVICE = {
    "metadata-version": "build it with a back-end that writes Metadata-Version 2.5 or older",
    "version": "release a version PyPI accepts (no '+local' part) from pyproject.toml",
    "summary": "shorten the project's description (Summary) to 512 characters",
    "classifier": "use classifiers from https://pypi.org/classifiers/ in pyproject.toml",
    "requires-dist": "depend on released packages, not on direct URLs",
    "license": "keep only license (the SPDX expression) in pyproject.toml",
}


def _metadata_violations(dist: DistFile, errors: list[InvalidMetadata]) -> list[Violation]:
    """One violation per error, the one warehouse reports first."""
    ordered = sorted(errors, key=_reported_first)
    violations = []
    for error in ordered:
        text = str(error)
        see = LOCAL_VERSION_URL if "use of local versions" in text else CORE_METADATA_URL
        pypi_message = f"{text}{'' if text.endswith('.') else '.'} See {see} for more information."
        advice = METADATA_ADVICE.get(error.field, "fix it in pyproject.toml and build again")
        violations.append(violation(Rule.METADATA, dist, f"PyPI refuses its metadata: {text}; {advice}.", pypi_message))
    return violations


def _reported_first(error: InvalidMetadata) -> tuple[int, str]:
    """warehouse reports metadata-version, name, version first, then by field name."""
    field = error.field
    return (
        (METADATA_ERROR_ORDER.index(field), "") if field in METADATA_ERROR_ORDER else (len(METADATA_ERROR_ORDER), field)
    )


def description_violations(dist: DistFile, meta: Metadata, help_url: str) -> list[Violation]:
    """Render the long description as warehouse does on upload (no fallback)."""
    if not meta.description:
        return []
    declared = meta.description_content_type or "text/x-rst"
    header = EmailMessage()
    header["content-type"] = declared
    kind = header.get_content_type()
    warnings = io.StringIO()
    if kind == "text/x-rst":
        rendered = rst.render(meta.description, stream=warnings)
    elif kind == "text/markdown":
        rendered = markdown.render(meta.description)
    else:
        rendered = txt.render(meta.description)
    if rendered is not None:
        return []
    said = (
        f"The description failed to render for '{declared}'."
        if meta.description_content_type
        else "The description failed to render in the default format of reStructuredText."
    )
    pypi_message = f"{said} See {help_url} for more information."
    why = " ".join(warnings.getvalue().split())[:300] or "the renderer gave no reason"
    advice = f"its README ({kind}) does not render on PyPI ({why}); fix the README, or declare its content type"
    return [violation(Rule.DESCRIPTION, dist, advice + ".", pypi_message)]
