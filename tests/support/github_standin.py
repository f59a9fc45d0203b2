"""A loopback stand-in for the GitHub REST API routes the console calls.

Payloads follow GitHub's documented response shapes (their ``url`` fields
point back at this server). Each test sets the scenario: the conclusion a
run ends with, whether a dispatch answers 204 or 200 with the run's id, and
error answers queued per route.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], Any]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RunArtifact:
    """A zip the run uploaded (actions/upload-artifact), as the artifacts API serves it."""

    id: int
    name: str
    archive: bytes
    expired: bool = False


@dataclass
class Run:
    id: int
    ref: str
    head_sha: str
    inputs: dict[str, str]
    created_at: datetime
    visible_at: float
    conclusion: str
    event: str = "workflow_dispatch"
    status: str = "queued"
    polls: int = 0
    workflow_file: str = ""
    artifacts: list[RunArtifact] = field(default_factory=list)


@dataclass
class Scenario:
    conclusion: str = "success"
    # GETs of a run before it reports completed.
    polls_until_done: int = 2
    # True: a dispatch answers 200 with the run's id (the newer API); False: 204.
    return_run_details: bool = True
    # Seconds after a dispatch before its run is listed (GitHub is not instant).
    run_delay: float = 0.0
    failing_step: str = "Publish to PyPI"
    # Called once when a run completes with success, as the workflow would publish.
    on_success: Callable[[Run], None] | None = None
    # A dispatch that fails with a 5xx still starts its run.
    run_despite_error: bool = False


@dataclass
class GitHubStandIn:
    owner: str = "acme"
    repo: str = "sample-pkg"
    workflow_file: str = "publish.yml"
    token: str = "ghp_" + "s" * 36
    refs: dict[str, str] = field(default_factory=dict)  # tag or branch → commit
    tags: list[str] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)
    scenario: Scenario = field(default_factory=Scenario)

    def __post_init__(self) -> None:
        self.workflow_id = 161335
        # Other workflows of the repository (a wheels workflow): file -> id.
        self.workflows: dict[str, int] = {self.workflow_file: self.workflow_id}
        self.runs: list[Run] = []
        self.requests: list[tuple[str, str]] = []
        self.dispatches: list[dict[str, Any]] = []
        self._failures: dict[str, list[Answer]] = {}
        self._ids = itertools.count(30433642)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- control -------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def repository(self) -> str:
        return f"{self.owner}/{self.repo}"

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                standin._handle(self, "GET")

            def do_POST(self) -> None:
                standin._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def fail(self, route: str, status: int, *, headers: dict[str, str] | None = None, body: Any = None, times: int = 1):
        """Answer the next ``times`` requests to ``route`` with an error."""
        body = body if body is not None else {"message": f"stand-in error {status}"}
        self._failures.setdefault(route, []).extend([(status, headers or {}, body)] * times)

    def fail_primary_rate_limit(self, route: str, *, times: int = 1) -> None:
        self.fail(
            route,
            403,
            headers={
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(int(time.time()) + 3600),
            },
            body={
                "message": "API rate limit exceeded for user ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
            times=times,
        )

    def fail_secondary_rate_limit(self, route: str, *, times: int = 1) -> None:
        self.fail(
            route,
            403,
            headers={"Retry-After": "30"},
            body={
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            },
            times=times,
        )

    def add_run(
        self,
        workflow_file: str,
        head_sha: str,
        *,
        ref: str = "main",
        conclusion: str = "success",
        status: str = "completed",
        event: str = "push",
        artifacts: dict[str, dict[str, bytes]] | None = None,
    ) -> Run:
        """A run of ``workflow_file`` that already happened (a push's CI), with
        ``artifacts``: artifact name -> {file name in its zip: bytes}."""
        self.workflows.setdefault(workflow_file, self.workflow_id + len(self.workflows))
        run = Run(
            id=next(self._ids),
            ref=ref,
            head_sha=head_sha,
            inputs={},
            created_at=datetime.now(UTC),
            visible_at=0.0,
            conclusion=conclusion,
            event=event,
            status=status,
            workflow_file=workflow_file,
        )
        for name, files in (artifacts or {}).items():
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for filename, data in files.items():
                    archive.writestr(filename, data)
            run.artifacts.append(RunArtifact(next(self._ids), name, buffer.getvalue()))
        with self._lock:
            self.runs.append(run)
        return run

    def workflow_run_event(self, run: Run, *, status: str, action: str = "") -> dict[str, Any]:
        """The ``workflow_run`` webhook GitHub sends for ``run`` at ``status``
        (its documented shape: the run as the REST API shows it, the
        workflow, the repository and the sender)."""
        # Reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run
        shown = self._run(run)
        shown["status"] = status
        shown["conclusion"] = run.conclusion if status == "completed" else None
        return {
            "action": action or {"queued": "requested", "completed": "completed"}.get(status, status),
            "workflow_run": shown,
            "workflow": self._workflow(run.workflow_file),
            "repository": self._repository(),
            "sender": {"login": "octocat", "id": 1, "type": "User"},
        }

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for m, path in self.requests if m == method and path.endswith(suffix))

    # -- payloads ------------------------------------------------------------

    def _repo_url(self) -> str:
        return f"{self.url}/repos/{self.owner}/{self.repo}"

    def _repository(self) -> dict[str, Any]:
        return {
            "id": 1296269,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": self.repo,
            "full_name": self.repository,
            "private": False,
            "owner": {"login": self.owner, "id": 1, "type": "Organization", "url": f"{self.url}/users/{self.owner}"},
            "html_url": f"https://github.com/{self.repository}",
            "url": self._repo_url(),
            "default_branch": "main",
        }

    def _workflow(self, workflow_file: str = "") -> dict[str, Any]:
        workflow_file = workflow_file or self.workflow_file
        workflow_id = self.workflows[workflow_file]
        return {
            "id": workflow_id,
            "node_id": "MDg6V29ya2Zsb3cxNjEzMzU=",
            "name": "Publish" if workflow_file == self.workflow_file else workflow_file,
            "path": f".github/workflows/{workflow_file}",
            "state": "active",
            "created_at": "2020-01-08T23:48:37.000-08:00",
            "updated_at": "2020-01-08T23:50:21.000-08:00",
            "url": f"{self._repo_url()}/actions/workflows/{workflow_id}",
            "html_url": f"https://github.com/{self.repository}/blob/main/.github/workflows/{workflow_file}",
            "badge_url": f"https://github.com/{self.repository}/workflows/Publish/badge.svg",
        }

    def _run(self, run: Run) -> dict[str, Any]:
        url = f"{self._repo_url()}/actions/runs/{run.id}"
        workflow_file = run.workflow_file or self.workflow_file
        return {
            "id": run.id,
            "name": "Publish",
            "node_id": "MDEyOldvcmtmbG93IFJ1bjI2OTI4OQ==",
            "head_branch": run.ref,
            "head_sha": run.head_sha,
            "path": f".github/workflows/{workflow_file}",
            "display_title": "Publish",
            "run_number": run.id % 1000,
            "run_attempt": 1,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion if run.status == "completed" else None,
            "workflow_id": self.workflows.get(workflow_file, self.workflow_id),
            "url": url,
            "html_url": f"https://github.com/{self.repository}/actions/runs/{run.id}",
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "check_suite_url": f"{self._repo_url()}/check-suites/414944374",
            "artifacts_url": f"{url}/artifacts",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "workflow_url": f"{self._repo_url()}/actions/workflows/{self.workflows.get(workflow_file, self.workflow_id)}",
            "created_at": _iso(run.created_at),
            "updated_at": _iso(run.created_at),
            "run_started_at": _iso(run.created_at),
            "repository": self._repository(),
            "head_repository": self._repository(),
        }

    def _jobs(self, run: Run) -> dict[str, Any]:
        failed = run.conclusion != "success"
        names = ["Check out", "Build", self.scenario.failing_step]
        steps = [
            {
                "name": name,
                "status": "completed",
                "conclusion": ("failure" if failed and name == self.scenario.failing_step else "success"),
                "number": number,
                "started_at": _iso(run.created_at),
                "completed_at": _iso(run.created_at),
            }
            for number, name in enumerate(names, start=1)
        ]
        return {
            "total_count": 1,
            "jobs": [
                {
                    "id": run.id * 10,
                    "run_id": run.id,
                    "run_url": f"{self._repo_url()}/actions/runs/{run.id}",
                    "node_id": "MDg6Q2hlY2tSdW4zOTk0NDQ0OTY=",
                    "head_sha": run.head_sha,
                    "url": f"{self._repo_url()}/actions/jobs/{run.id * 10}",
                    "html_url": f"https://github.com/{self.repository}/actions/runs/{run.id}/job/{run.id * 10}",
                    "status": "completed",
                    "conclusion": run.conclusion,
                    "started_at": _iso(run.created_at),
                    "completed_at": _iso(run.created_at),
                    "name": "publish",
                    "steps": steps,
                    "check_run_url": f"{self._repo_url()}/check-runs/{run.id * 10}",
                    "labels": ["ubuntu-latest"],
                    "workflow_name": "Publish",
                }
            ],
        }

    def _artifact(self, run: Run, artifact: RunArtifact) -> dict[str, Any]:
        url = f"{self._repo_url()}/actions/artifacts/{artifact.id}"
        return {
            "id": artifact.id,
            "node_id": "MDg6QXJ0aWZhY3QxMQ==",
            "name": artifact.name,
            "size_in_bytes": len(artifact.archive),
            "url": url,
            "archive_download_url": f"{url}/zip",
            "expired": artifact.expired,
            "digest": "sha256:" + hashlib.sha256(artifact.archive).hexdigest(),
            "created_at": _iso(run.created_at),
            "expires_at": _iso(run.created_at),
            "updated_at": _iso(run.created_at),
            "workflow_run": {
                "id": run.id,
                "repository_id": 1296269,
                "head_repository_id": 1296269,
                "head_branch": run.ref,
                "head_sha": run.head_sha,
            },
        }

    def _find_artifact(self, artifact_id: int) -> RunArtifact | None:
        with self._lock:
            return next((a for r in self.runs for a in r.artifacts if a.id == artifact_id), None)

    def _logs_zip(self, run: Run) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(
                "publish/2_Build.txt",
                f"2026-01-01T00:00:00Z python -m build\n2026-01-01T00:00:01Z Successfully built run {run.id}\n",
            )
            outcome = "Uploaded" if run.conclusion == "success" else "ERROR HTTPError: 400 Bad Request"
            archive.writestr(
                "publish/3_Publish to PyPI.txt",
                f"2026-01-01T00:00:02Z environment={run.inputs.get('environment')}\n2026-01-01T00:00:03Z {outcome}\n",
            )
        return buffer.getvalue()

    # -- routing -------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((method, path))
        if path.startswith("/_blobs/artifacts/"):
            artifact = self._find_artifact(int(path.split("/")[3]))
            self._send(
                handler,
                200 if artifact else 404,
                {"Content-Type": "application/zip"},
                artifact.archive if artifact else b"",
            )
            return
        if path.startswith("/_blobs/"):
            run = self._find_run(int(path.split("/")[3]))
            self._send(handler, 200, {"Content-Type": "application/zip"}, self._logs_zip(run) if run else b"")
            return
        auth = handler.headers.get("Authorization", "")
        if self.token and auth not in (f"token {self.token}", f"Bearer {self.token}"):
            self._send_json(
                handler, 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
            )
            return
        route, answer = self._route(method, path, query, body)
        with self._lock:
            queued = self._failures.get(route)
            failure = queued.pop(0) if queued else None
        if failure is not None:
            status, headers, payload = failure
            if route == "dispatch" and self.scenario.run_despite_error:
                self._dispatch(json.loads(body or b"{}"))
            self._send_json(handler, status, headers, payload)
            return
        status, headers, payload = answer()
        if isinstance(payload, bytes):
            self._send(handler, status, headers, payload)
        else:
            self._send_json(handler, status, headers, payload)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[str, Callable[[], Answer]]:
        repo = f"/repos/{self.owner}/{self.repo}"
        not_found: Answer = (404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        if not path.startswith(repo):
            return "unknown", lambda: not_found
        rest = path[len(repo) :]
        workflow_paths = {
            f"/actions/workflows/{self.workflow_file}",
            f"/actions/workflows/{self.workflow_id}",
        }
        by_path = {f"/actions/workflows/{name}": name for name in self.workflows} | {
            f"/actions/workflows/{number}": name for name, number in self.workflows.items()
        }
        if method == "GET" and rest == "":
            return "repo", lambda: (200, {}, self._repository())
        if method == "GET" and rest in by_path:
            return "workflow", lambda: (200, {}, self._workflow(by_path[rest]))
        if method == "POST" and rest.endswith("/dispatches") and rest[: -len("/dispatches")] in workflow_paths:
            return "dispatch", lambda: self._dispatch_answer(json.loads(body or b"{}"))
        if method == "GET" and rest == "/actions/runs":
            return "runs", lambda: (200, {}, self._list_runs(query))
        if method == "GET" and rest.endswith("/runs") and rest[:-5] in by_path:
            return "runs", lambda: (200, {}, self._list_runs(query, by_path[rest[:-5]]))
        if method == "GET" and rest.startswith("/actions/artifacts/") and rest.endswith("/zip"):
            number = rest[len("/actions/artifacts/") : -len("/zip")]
            artifact = self._find_artifact(int(number)) if number.isdigit() else None
            if artifact is None:
                return "artifact", lambda: not_found
            if artifact.expired:
                return "artifact", lambda: (410, {}, {"message": "Artifact has expired", "documentation_url": ""})
            location = f"{self.url}/_blobs/artifacts/{artifact.id}/artifact.zip"
            return "artifact", lambda: (302, {"Location": location}, b"")
        if method == "GET" and rest.startswith("/actions/runs/"):
            tail = rest[len("/actions/runs/") :].split("/")
            run = self._find_run(int(tail[0])) if tail[0].isdigit() else None
            if run is None:
                return "run", lambda: not_found
            if len(tail) == 1:
                return "run", lambda: (200, {}, self._run(self._advance(run)))
            if tail[1:] == ["jobs"]:
                return "jobs", lambda: (200, {}, self._jobs(run))
            if tail[1:] == ["artifacts"]:
                listed = [self._artifact(run, artifact) for artifact in run.artifacts]
                return "artifacts", lambda: (200, {}, {"total_count": len(listed), "artifacts": listed})
            if tail[1:] == ["logs"]:
                location = f"{self.url}/_blobs/runs/{run.id}/logs.zip"
                return "logs", lambda: (302, {"Location": location}, b"")
        if method == "GET" and rest == "/tags":
            return "tags", lambda: (200, {}, [self._ref(name, "tags") for name in self.tags])
        if method == "GET" and rest == "/branches":
            return "branches", lambda: (200, {}, [self._ref(name, "branches") for name in self.branches])
        return "unknown", lambda: not_found

    def _ref(self, name: str, kind: str) -> dict[str, Any]:
        sha = self.refs.get(name, "0" * 40)
        ref: dict[str, Any] = {"name": name, "commit": {"sha": sha, "url": f"{self._repo_url()}/commits/{sha}"}}
        if kind == "tags":
            ref["zipball_url"] = f"{self._repo_url()}/zipball/{name}"
            ref["tarball_url"] = f"{self._repo_url()}/tarball/{name}"
            ref["node_id"] = "MDQ6VXNlcjE="
        else:
            ref["protected"] = False
        return ref

    def _dispatch(self, data: dict[str, Any]) -> Run | None:
        ref = str(data.get("ref", ""))
        if ref not in self.refs:
            return None
        run = Run(
            id=next(self._ids),
            ref=ref,
            head_sha=self.refs[ref],
            inputs=dict(data.get("inputs") or {}),
            created_at=datetime.now(UTC),
            visible_at=time.monotonic() + self.scenario.run_delay,
            conclusion=self.scenario.conclusion,
        )
        with self._lock:
            self.runs.append(run)
            self.dispatches.append(data)
        return run

    def _dispatch_answer(self, data: dict[str, Any]) -> Answer:
        run = self._dispatch(data)
        if run is None:
            return 422, {}, {"message": f"No ref found for: {data.get('ref')}", "documentation_url": ""}
        if data.get("return_run_details") and self.scenario.return_run_details:
            url = f"{self._repo_url()}/actions/runs/{run.id}"
            return 200, {}, {"workflow_run_id": run.id, "run_url": url, "html_url": self._run(run)["html_url"]}
        return 204, {}, b""

    def _list_runs(self, query: dict[str, str], workflow_file: str = "") -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            runs = [r for r in self.runs if r.visible_at <= now]
        if workflow_file:
            runs = [r for r in runs if (r.workflow_file or self.workflow_file) == workflow_file]
        if "status" in query:
            runs = [r for r in runs if query["status"] in (r.status, r.conclusion)]
        if "event" in query:
            runs = [r for r in runs if r.event == query["event"]]
        if "head_sha" in query:
            runs = [r for r in runs if r.head_sha == query["head_sha"]]
        runs.sort(key=lambda r: r.id, reverse=True)  # newest first, as GitHub lists them
        return {"total_count": len(runs), "workflow_runs": [self._run(r) for r in runs]}

    def _find_run(self, run_id: int) -> Run | None:
        with self._lock:
            return next((r for r in self.runs if r.id == run_id), None)

    def _advance(self, run: Run) -> Run:
        with self._lock:
            if run.status == "completed":
                return run
            run.polls += 1
            done = run.polls >= self.scenario.polls_until_done
            run.status = "completed" if done else "in_progress"
        if done and run.conclusion == "success" and self.scenario.on_success is not None:
            self.scenario.on_success(run)
        return run

    def complete(self, run: Run) -> None:
        """Finish ``run`` now (as if GitHub finished it between two polls)."""
        with self._lock:
            run.status = "completed"

    @staticmethod
    def _send_json(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: Any) -> None:
        data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        GitHubStandIn._send(handler, status, {"Content-Type": "application/json; charset=utf-8", **headers}, data)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if status != 204:
            handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if status != 204 and data:
            handler.wfile.write(data)
