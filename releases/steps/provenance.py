"""Provenance (PEP 740) of the files an index serves: who built and
published each one, verified rather than believed.

Each file's provenance is found where the simple API says (its
``provenance`` key) or at the Integrity API's address, read, and each of its
attestations verified with ``pypi-attestations`` against the Trusted
Publisher it names and the file's sha256 (Sigstore: the signing
certificate, its chain to Fulcio, the transparency log's entry). The
signing certificate then says which repository, workflow and commit made it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pypi_attestations import (
    AttestationError,
    Distribution,
    GitHubPublisher,
    GitLabPublisher,
    Provenance,
)

from releases.clients import index, integrity
from releases.steps.workspace import Workspace

# Fulcio's certificate extensions (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
SOURCE_REPOSITORY_URI = "1.3.6.1.4.1.57264.1.12"
SOURCE_REPOSITORY_DIGEST = "1.3.6.1.4.1.57264.1.13"
BUILD_CONFIG_URI = "1.3.6.1.4.1.57264.1.18"


@dataclass(frozen=True)
class ExpectedPublisher:
    """Who must have published the files: the project's repository (owner/name)
    at the release's commit; ``workflow`` when one is known; ``required``:
    a file without provenance fails (Trusted Publishing attests every file)."""

    repository: str
    commit: str
    workflow: str = ""
    required: bool = False


@dataclass(frozen=True)
class FileProvenance:
    filename: str
    signed: bool
    passed: bool
    detail: str
    repository: str = ""
    workflow: str = ""
    commit: str = ""


def read_provenance(
    ws: Workspace,
    *,
    index_url: str,
    project: str,
    version: str,
    files: list[tuple[str, str]],
    expected: ExpectedPublisher,
    offline: bool,
) -> list[FileProvenance]:
    """The provenance of each of ``files`` (filename, sha256) on the index, judged against ``expected``."""
    ws.step(f"reading the provenance of {len(files)} files (PEP 740)")
    listed = index.list_files(index_url, project)
    found = []
    for filename, sha256 in files:
        entry = listed.get(filename)
        url = (entry.provenance_url if entry else None) or integrity.provenance_url(
            index_url, project, version, filename
        )
        document = integrity.fetch_provenance(url) if url else None
        result = judge(filename, sha256, document, expected, offline=offline)
        ws.log.write(f"{filename}: {result.detail}")
        found.append(result)
    return found


def judge(
    filename: str, sha256: str, document: bytes | None, expected: ExpectedPublisher, *, offline: bool
) -> FileProvenance:
    """Verify ``document`` for the file ``filename`` with ``sha256``."""
    if document is None:
        said = (
            "no provenance: the workflow must publish with attestations (gh-action-pypi-publish attestations: true)"
            if expected.required
            else "not signed: no provenance (uploaded with an API token)"
        )
        return FileProvenance(filename, signed=False, passed=not expected.required, detail=said)
    try:
        provenance = Provenance.model_validate_json(document)
        dist = Distribution(name=filename, digest=sha256)
    except ValueError as exc:
        return FileProvenance(filename, signed=False, passed=False, detail=f"unreadable provenance: {_first_line(exc)}")
    signers = []
    for bundle in provenance.attestation_bundles:
        for attestation in bundle.attestations:
            try:
                attestation.verify(bundle.publisher, dist, offline=offline)
            except (AttestationError, ValueError) as exc:
                return FileProvenance(
                    filename,
                    signed=False,
                    passed=False,
                    detail=f"its attestation does not verify for these bytes: {_first_line(exc)}",
                )
            claims = attestation.certificate_claims
            repository, workflow = _publisher(bundle.publisher, claims)
            signers.append((repository, workflow, claims.get(SOURCE_REPOSITORY_DIGEST, "")))
    if not signers:
        return FileProvenance(
            filename, signed=False, passed=not expected.required, detail="provenance without attestations"
        )
    repository, workflow, commit = signers[0]
    problems = [
        f"{what} {got or '(none)'}, not {want}"
        for what, got, want in (
            ("repository", repository, expected.repository),
            ("commit", commit, expected.commit),
            ("workflow", workflow, expected.workflow),
        )
        if want and got.lower() != want.lower()
    ]
    who = f"signed by {repository}, workflow {workflow or '(unnamed)'}, commit {commit[:12] or '(none)'}"
    if any(signer != signers[0] for signer in signers):
        problems.append("its attestations name different publishers")
    return FileProvenance(
        filename,
        signed=True,
        passed=not problems,
        detail=who + (": " + "; ".join(problems) if problems else ""),
        repository=repository,
        workflow=workflow,
        commit=commit,
    )


def _publisher(publisher: object, claims: dict[str, str]) -> tuple[str, str]:
    """The repository (owner/name) and workflow file the attestation names."""
    if isinstance(publisher, GitHubPublisher):
        return publisher.repository, publisher.workflow
    if isinstance(publisher, GitLabPublisher):
        return publisher.repository, publisher.workflow_filepath
    source = claims.get(SOURCE_REPOSITORY_URI, "")
    return source.removeprefix("https://github.com/").removeprefix("https://gitlab.com/"), ""


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
