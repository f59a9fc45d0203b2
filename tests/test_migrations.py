"""Data migrations, on databases of their own (SQLite, the embedded default,
and PostgreSQL): rows written at the schema before a migration are there,
and right, after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Run by `manage.py shell -c`: migrate to 0006, write history through the
# historical models, migrate to the newest, print what the deployments say.
BEFORE_PROJECT_ON_DEPLOYMENT = """
import json
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

before = [("releases", "0006_log_line_job_without_constraint")]
executor = MigrationExecutor(connection)
executor.migrate(before)
old = executor.loader.project_state(before).apps
Project = old.get_model("releases", "Project")
Environment = old.get_model("releases", "Environment")
Release = old.get_model("releases", "Release")
Deployment = old.get_model("releases", "Deployment")
test_pypi = Environment.objects.create(
    name="test-pypi", title="Test PyPI", upload_url="http://127.0.0.1:1/", index_url="http://127.0.0.1:1/simple/"
)
pypi = Environment.objects.create(
    name="pypi", title="PyPI", upload_url="http://127.0.0.1:2/", index_url="http://127.0.0.1:2/simple/", position=1
)
for name in ("alpha", "beta"):
    project = Project.objects.create(name=name, source="https://example.org/" + name + ".git")
    for n in range(3):
        release = Release.objects.create(project=project, version=f"1.{n}.0", ref=f"v1.{n}.0")
        Deployment.objects.create(release=release, environment=test_pypi, status="succeeded")
        if n:
            Deployment.objects.create(release=release, environment=pypi, status="failed")

executor = MigrationExecutor(connection)
executor.migrate(executor.loader.graph.leaf_nodes())

from releases.models import Deployment
from releases.selectors.dashboard import deployment_board

rows = list(Deployment.objects.order_by("id").values_list("release__project__name", "project__name"))
board = {
    project.name: [cell.latest.release.version if cell.latest else None for cell in cells]
    for project, cells in deployment_board().rows()
}
print(json.dumps({"rows": rows, "board": board}))
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment for a console on a new, empty database."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env["CONSOLE_VAR_DIR"] = str(tmp_path / "var")
    if request.param == "sqlite":
        yield env
        return
    server = urlsplit(os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres")
    admin = server._replace(path="/postgres").geturl()
    name = f"console_migrations_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**env, "DATABASE_URL": server._replace(path=f"/{name}").geturl()}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_existing_deployments_get_their_release_s_project_and_show_on_the_board(empty_database):
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", BEFORE_PROJECT_ON_DEPLOYMENT],
        cwd=ROOT,
        env=empty_database,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(found["rows"]) == 10
    assert all(release_project == project for release_project, project in found["rows"])
    assert found["board"] == {"alpha": ["1.2.0", "1.2.0"], "beta": ["1.2.0", "1.2.0"]}
