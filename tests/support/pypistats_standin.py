"""A pypistats.org API stand-in: ``/api/packages/<name>/overall`` and
``/python_minor`` with the documented payload shapes (https://pypistats.org/api/)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.support.standins import JsonServer


class PypistatsStandin(JsonServer):
    def __init__(self, port: int = 0) -> None:
        # package -> list of (date, python minor, downloads)
        self.rows: dict[str, list[tuple[str, str, int]]] = {}
        super().__init__(self._route, port)

    @property
    def api_url(self) -> str:
        return self.url + "/api"

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(path).path.strip("/").split("/")
        if method != "GET" or len(parts) != 4 or parts[:2] != ["api", "packages"]:
            return 404, {"message": "not found"}
        package, endpoint = parts[2], parts[3]
        rows = self.rows.get(package)
        if rows is None:
            return 404, {"message": "not found"}
        if endpoint == "python_minor":
            data = [{"category": minor, "date": day, "downloads": n} for day, minor, n in rows]
            return 200, {"data": data, "package": package, "type": "python_minor_downloads"}
        if endpoint == "overall":
            totals: dict[str, int] = {}
            for day, _, n in rows:
                totals[day] = totals.get(day, 0) + n
            data = [{"category": "without_mirrors", "date": d, "downloads": n} for d, n in sorted(totals.items())]
            return 200, {"data": data, "package": package, "type": "overall_downloads"}
        return 404, {"message": "not found"}
