"""The approved files, handed to the project's publishing workflow.

No sign-in: the signed, single-use link is the permission, and the service
checks it (``services.handouts``). What is sent is checked against the
digest recorded at build time as it streams."""

from __future__ import annotations

import base64

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from releases.client_address import client_address
from releases.clients import artifacts
from releases.clients.artifacts import ArtifactStorageError
from releases.services.handouts import HandoutRefused, handout_claim


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


@require_GET
def handout_files(request: HttpRequest, token: str) -> HttpResponse:
    return _text(404, "Name a file: each approved file is downloaded from this address followed by its filename.")


@require_GET
def handout_file(request: HttpRequest, token: str, filename: str) -> HttpResponseBase:
    try:
        record = handout_claim(token, filename, client=client_address(request))
    except HandoutRefused as refused:
        return _text(refused.status, refused.message)
    artifact = record.artifact
    try:
        download = artifacts.open_download(artifact.path, sha256=artifact.sha256, size=artifact.size)
    except ArtifactStorageError as exc:
        return _text(409, str(exc))
    response = StreamingHttpResponse(download.chunks, content_type="application/octet-stream")
    response["Content-Length"] = str(download.size)
    response["Content-Disposition"] = content_disposition_header(True, artifact.filename)
    # RFC 9530: the digest of what is sent, for clients that check it themselves.
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(artifact.sha256)).decode()}:"
    response["Cache-Control"] = "no-store"
    return response
