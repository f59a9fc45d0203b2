"""An OSV API stand-in: ``POST /v1/querybatch`` and ``GET /v1/vulns/{id}``,
answering with the documented payload shapes
(https://google.github.io/osv.dev/post-v1-querybatch/, /get-v1-vulns/)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from packageurl import PackageURL
from packaging.utils import canonicalize_name

from tests.support.standins import JsonServer


class OsvStandin(JsonServer):
    def __init__(self, port: int = 0) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.affects: dict[tuple[str, str], list[str]] = {}
        self.failing = False
        # Ids per result before a next_page_token (the real service pages large answers).
        self.page_size = 0
        super().__init__(self._route, port)

    def add(
        self,
        vuln_id: str,
        package: str,
        version: str,
        *,
        severity: str = "HIGH",
        fixed: str = "",
        summary: str = "",
        cvss: str = "",
    ) -> None:
        """A vulnerability of ``package`` ``version``, as the GitHub advisory database records it."""
        events: list[dict[str, str]] = [{"introduced": "0"}]
        if fixed:
            events.append({"fixed": fixed})
        record: dict[str, Any] = {
            "id": vuln_id,
            "summary": summary or f"A flaw in {package}",
            "details": f"Details of {vuln_id}.",
            "aliases": [f"CVE-2026-{len(self.records) + 1000}"],
            "modified": "2026-01-01T00:00:00Z",
            "published": "2026-01-01T00:00:00Z",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": package, "purl": f"pkg:pypi/{package}"},
                    "ranges": [{"type": "ECOSYSTEM", "events": events}],
                    "versions": [version],
                }
            ],
            "schema_version": "1.6.0",
        }
        if severity:
            record["database_specific"] = {"severity": severity, "github_reviewed": True}
        if cvss:
            record["severity"] = [{"type": "CVSS_V3", "score": cvss}]
        self.records[vuln_id] = record
        self.affects.setdefault((str(canonicalize_name(package)), version), []).append(vuln_id)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self.failing:
            return 503, {"code": 14, "message": "unavailable"}
        if method == "POST" and path == "/v1/querybatch":
            results = []
            for query in body["queries"]:
                purl = PackageURL.from_string(query["package"]["purl"])
                ids = self.affects.get((str(canonicalize_name(purl.name)), purl.version or ""), [])
                start = int(query.get("page_token") or 0)
                end = start + self.page_size if self.page_size else len(ids)
                result: dict[str, Any] = {}
                if ids[start:end]:
                    result["vulns"] = [{"id": i, "modified": self.records[i]["modified"]} for i in ids[start:end]]
                if end < len(ids):
                    result["next_page_token"] = str(end)
                results.append(result)
            return 200, {"results": results}
        if method == "GET" and path.startswith("/v1/vulns/"):
            record = self.records.get(unquote(path.removeprefix("/v1/vulns/")))
            if record is None:
                return 404, {"code": 5, "message": "Bug not found."}
            return 200, record
        return 404, {"code": 5, "message": "Not found"}
