"""A PyPI / Test PyPI stand-in on loopback: the legacy upload API that twine
talks to, the simple API (PEP 691 JSON first, PEP 503 HTML on request) and
the JSON API, over one in-memory state that tests arrange.

The upload rules themselves, in warehouse's order and with its status codes
and messages, are in ``tests.support.pypi_forklift``. Every request is
recorded, so that a test can assert that a refused release sent nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import traceback
from dataclasses import dataclass, field
from datetime import UTC
from email import message_from_bytes, policy
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import Version

from tests.support import pypi_forklift
from tests.support.pypi_forklift import Form, Refusal, Upload
from tests.support.pypi_state import PypiState, StoredFile, StoredProject, StoredRelease

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
SIMPLE_HTML = "application/vnd.pypi.simple.v1+html"
API_VERSION = "1.4"


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    payload: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    """What the stand-in received and answered (never the credential)."""

    method: str
    path: str
    accept: str
    body_bytes: int
    filename: str | None
    status: int
    reason: str


class PypiStandin:
    """The HTTP side: ``/legacy/``, ``/simple/``, ``/pypi/<name>/json``, files."""

    def __init__(self, port: int = 0) -> None:
        self.state = PypiState()
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # As on PyPI: https://upload.pypi.org/legacy/, https://pypi.org/simple/, https://pypi.org/pypi/.
        self.upload_url = self.url + "/legacy/"
        self.simple_url = self.url + "/simple/"
        self.json_url = self.url + "/pypi/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PypiStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def uploads(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    @property
    def upload_bytes_received(self) -> int:
        """Bytes of upload requests received: 0 when nothing was sent."""
        return sum(r.body_bytes for r in self.uploads)

    # The request cycle.

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urlsplit(handler.path)
        path = unquote(split.path)
        accept = handler.headers.get("Accept", "")
        filename: str | None = None
        try:
            if method == "POST" and path in ("/legacy/", "/legacy"):
                form, content = parse_form(handler.headers.get("Content-Type", ""), body)
                filename = content.filename if content else None
                answer = self._upload(handler, path, form, content)
            elif method == "GET":
                answer = self._get(path, parse_qs(split.query), accept)
            else:
                answer = Answer(405, "Method Not Allowed")
        except Refusal as refusal:
            text = f"{refusal.status} {refusal.message}\n".encode()
            answer = Answer(refusal.status, refusal.message, text, headers=refusal.headers)
        except Exception:  # a bug of the stand-in: answered, and kept for the test to see
            self.errors.append(traceback.format_exc())
            answer = Answer(500, "Internal Server Error")
        with self.state.lock:
            self.requests.append(
                RecordedRequest(method, handler.path, accept, len(body), filename, answer.status, answer.reason)
            )
        # warehouse puts its message in the status line, where twine reads it;
        # the line must stay ISO-8859-1 (forklift.utils._exc_with_message).
        handler.send_response(answer.status, answer.reason.encode("iso-8859-1", "replace").decode("iso-8859-1"))
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.payload)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(answer.payload)

    def _upload(self, handler: BaseHTTPRequestHandler, path: str, form: Form, content: Upload | None) -> Answer:
        if path == "/legacy":
            raise Refusal(
                308,
                "An upload was attempted to /legacy but the expected upload URL is /legacy/ (with a trailing slash)",
                headers={"Location": "/legacy/"},
            )
        token = pypi_forklift.token_from_authorization(handler.headers.get("Authorization", ""))
        with self.state.lock:
            body = pypi_forklift.file_upload(self.state, self.state.tokens.get(token or ""), form, content)
        return Answer(200, "OK", body.encode())

    def _get(self, path: str, query: dict[str, list[str]], accept: str) -> Answer:
        with self.state.lock:
            if self.state.failures:
                status = self.state.failures.pop(0)
                return Answer(status, "Service Unavailable" if status == 503 else "Error", headers={"Retry-After": "0"})
            if self.state.html_only:
                query, accept = {}, "text/html"
            if path == "/simple/":
                return self._simple_index(query, accept)
            if m := re.fullmatch(r"/simple/([^/]+)/", path):
                return self._simple_detail(m.group(1), query, accept)
            if m := re.fullmatch(r"/pypi/([^/]+)/json/?", path):
                return self._json(m.group(1), None)
            if m := re.fullmatch(r"/pypi/([^/]+)/([^/]+)/json/?", path):
                return self._json(m.group(1), m.group(2))
            if m := re.fullmatch(r"/integrity/([^/]+)/([^/]+)/([^/]+)/provenance", path):
                found = self.state.find_file(m.group(3))
                if found and found[2].provenance is not None:
                    return Answer(200, "OK", json.dumps(found[2].provenance).encode(), "application/json")
                return _not_found_json()
            if m := re.fullmatch(r"/packages/(.+?)(\.metadata)?", path):
                return self._file(m.group(1), bool(m.group(2)))
        return Answer(404, "Not Found", b"404 Not Found\n", "text/plain")

    # Reads (warehouse/api/simple.py, warehouse/packaging/utils.py, warehouse/legacy/api/json.py).

    def _simple_index(self, query: dict[str, list[str]], accept: str) -> Answer:
        projects = sorted(self.state.projects.values(), key=lambda p: p.normalized_name)
        if negotiate(accept, query) == SIMPLE_JSON:
            data = {
                "meta": {"api-version": API_VERSION, "_last-serial": 1},
                "projects": [{"name": p.name, "_last-serial": 1} for p in projects],
            }
            return Answer(200, "OK", json.dumps(data).encode(), SIMPLE_JSON)
        links = "\n".join(f'    <a href="/simple/{p.normalized_name}/">{escape(p.name)}</a>' for p in projects)
        page = f"<!DOCTYPE html>\n<html>\n  <body>\n{links}\n  </body>\n</html>\n"
        return Answer(200, "OK", page.encode(), negotiate(accept, query))

    def _simple_detail(self, name: str, query: dict[str, list[str]], accept: str) -> Answer:
        project = self.state.projects.get(canonicalize_name(name))
        if project is None:
            return Answer(404, "Not Found", b"404 Not Found\n", "text/plain")
        if name != project.normalized_name:
            return Answer(301, "Moved Permanently", headers={"Location": f"/simple/{project.normalized_name}/"})
        files = sorted(
            ((r, f) for r in project.releases.values() for f in r.files),
            key=lambda rf: (Version(rf[0].version), rf[1].filename),
        )
        entries = [self._simple_file(project, r, f) for r, f in files]
        content_type = negotiate(accept, query)
        if content_type == SIMPLE_JSON:
            data = {
                "meta": {"api-version": API_VERSION, "_last-serial": 1},
                "name": project.normalized_name,
                "project-status": {"status": "active"},
                "versions": sorted({r.version for r, _ in files}, key=Version),
                "files": entries,
            }
            return Answer(200, "OK", json.dumps(data).encode(), SIMPLE_JSON)
        return Answer(200, "OK", simple_html(project.normalized_name, entries).encode(), content_type)

    def _simple_file(self, project: StoredProject, release: StoredRelease, stored: StoredFile) -> dict[str, Any]:
        metadata = {"sha256": hashlib.sha256(stored.core_metadata).hexdigest()} if stored.core_metadata else False
        return {
            "filename": stored.filename,
            "url": f"{self.url}/packages/{stored.path}",
            "hashes": {"sha256": stored.sha256},
            "requires-python": release.requires_python or None,
            "size": stored.size,
            "upload-time": stored.upload_time.replace(tzinfo=None).isoformat() + "Z",
            "yanked": release.yanked_reason if release.yanked and release.yanked_reason else release.yanked,
            "data-dist-info-metadata": metadata,
            "core-metadata": metadata,
            "provenance": (
                f"{self.url}/integrity/{project.normalized_name}/{release.version}/{stored.filename}/provenance"
                if stored.provenance is not None
                else None
            ),
        }

    def _json(self, name: str, version: str | None) -> Answer:
        project = self.state.projects.get(canonicalize_name(name))
        if project is None or not project.releases:
            # warehouse answers 404 for a project without releases, too.
            return _not_found_json()
        if name != project.normalized_name:
            suffix = f"{version}/json" if version else "json"
            return Answer(301, "Moved Permanently", headers={"Location": f"/pypi/{project.normalized_name}/{suffix}"})
        ordered = sorted(project.releases.values(), key=lambda r: Version(r.version))
        if version is None:
            candidates = sorted(ordered, key=lambda r: (not r.yanked, not Version(r.version).is_prerelease))
            release = candidates[-1]
        else:
            found = project.releases.get(canonicalize_version(version))
            if found is None:
                return _not_found_json()
            release = found
        releases = {
            r.version: [self._json_file(r, f) for f in sorted(r.files, key=lambda f: f.filename)] for r in ordered
        }
        data: dict[str, Any] = {
            "info": {
                "name": project.name,
                "version": release.version,
                "summary": release.summary,
                "requires_python": release.requires_python,
                "yanked": release.yanked,
                "yanked_reason": release.yanked_reason or None,
            },
            "urls": releases[release.version],
            "vulnerabilities": [],
            "last_serial": 1,
            "ownership": {
                "roles": sorted(
                    [{"role": "Owner", "user": u} for u in project.owners]
                    + [{"role": "Maintainer", "user": u} for u in project.maintainers],
                    key=lambda role: (role["role"] != "Owner", role["user"]),
                ),
                "organization": None,
            },
        }
        if version is None:
            data["releases"] = releases
        return Answer(200, "OK", json.dumps(data).encode(), "application/json")

    def _json_file(self, release: StoredRelease, stored: StoredFile) -> dict[str, Any]:
        naive = stored.upload_time.astimezone(UTC).replace(tzinfo=None)
        return {
            "filename": stored.filename,
            "packagetype": stored.packagetype,
            "python_version": stored.python_version,
            "has_sig": False,
            "comment_text": None,
            "md5_digest": stored.md5,
            "digests": {"md5": stored.md5, "sha256": stored.sha256, "blake2b_256": stored.blake2_256},
            "core-metadata": (
                {"sha256": hashlib.sha256(stored.core_metadata).hexdigest()} if stored.core_metadata else False
            ),
            "size": stored.size,
            "downloads": -1,
            "upload_time": naive.strftime("%Y-%m-%dT%H:%M:%S"),
            "upload_time_iso_8601": naive.isoformat() + "Z",
            "url": f"{self.url}/packages/{stored.path}",
            "requires_python": release.requires_python or None,
            "yanked": release.yanked,
            "yanked_reason": release.yanked_reason or None,
        }

    def _file(self, path: str, metadata: bool) -> Answer:
        found = self.state.find_file(path.rsplit("/", 1)[-1])
        if found is None or found[2].path != path:
            return Answer(404, "Not Found", b"", "text/plain")
        stored = found[2]
        if metadata:
            if stored.core_metadata is None:
                return Answer(404, "Not Found", b"", "text/plain")
            return Answer(200, "OK", stored.core_metadata, "text/plain")
        return Answer(200, "OK", stored.content, "application/octet-stream")


def _not_found_json() -> Answer:
    return Answer(404, "Not Found", b'{"message": "Not Found"}', "application/json")


def negotiate(accept: str, query: dict[str, list[str]]) -> str:
    """The simple API's content type: ``?format=`` first, then the Accept
    header's best quality; HTML (PEP 503's text/html) when nothing is asked."""
    offered = [SIMPLE_JSON, SIMPLE_HTML, "text/html"]
    if query.get("format") and query["format"][0] in offered:
        return query["format"][0]
    best, best_q = "text/html", 0.0
    for item in accept.split(","):
        kind, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        kind = kind.strip().lower()
        if kind in offered and q > best_q:
            best, best_q = kind, q
    return best


def simple_html(name: str, entries: list[dict[str, Any]]) -> str:
    """PEP 503 page as warehouse's templates/api/simple/detail.html writes it."""
    links = []
    for entry in entries:
        attrs = [f'href="{escape(entry["url"])}#sha256={entry["hashes"]["sha256"]}"']
        if entry["requires-python"]:
            attrs.append(f'data-requires-python="{escape(entry["requires-python"])}"')
        if entry["yanked"]:
            reason = entry["yanked"] if isinstance(entry["yanked"], str) else ""
            attrs.append(f'data-yanked="{escape(reason)}"')
        if entry["core-metadata"]:
            digest = entry["core-metadata"]["sha256"]
            attrs.append(f'data-dist-info-metadata="sha256={digest}" data-core-metadata="sha256={digest}"')
        if entry["provenance"]:
            attrs.append(f'data-provenance="{escape(entry["provenance"])}"')
        links.append(f"    <a {' '.join(attrs)}>{escape(entry['filename'])}</a><br />")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n  <head>\n'
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>Links for {escape(name)}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {escape(name)}</h1>\n" + "\n".join(links) + "\n  </body>\n</html>\n"
    )


# The multipart form twine sends (requests_toolbelt's MultipartEncoder).


def parse_form(content_type: str, body: bytes) -> tuple[Form, Upload | None]:
    """Fields (every value, repeated keys kept) and the ``content`` file."""
    message = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=policy.HTTP)
    form: Form = {}
    content: Upload | None = None
    if not message.is_multipart():
        return form, None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True)
        payload = data if isinstance(data, bytes) else b""
        if name == "content" and part.get_filename() is not None:
            content = Upload(str(part.get_filename()), part.get_content_type(), payload)
        else:
            form.setdefault(name, []).append(payload.decode("utf-8"))
    return form, content
