"""Data migrations, on databases of their own (SQLite, the embedded default,
and PostgreSQL): rows written at the schema before a migration are there,
and right, after it."""

from __future__ import annotations

import json
import os
import sqlite3
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


# Run by `manage.py shell -c`: migrate to 0008, write an audit chain the way
# the console wrote it then (plain sha256, no seal), TAMPER with it or not,
# then migrate to the newest and print the hashes before and after.
OLD_AUDIT_CHAIN = """
import hashlib
import json
from datetime import datetime, timedelta, timezone
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

before = [("releases", "0008_deployment_project_required")]
executor = MigrationExecutor(connection)
executor.migrate(before)
old = executor.loader.project_state(before).apps
AuditEvent = old.get_model("releases", "AuditEvent")
AuditChainHead = old.get_model("releases", "AuditChainHead")
previous = "0" * 64
start = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
for n in range(1, 6):
    created_at = start + timedelta(hours=n, microseconds=n)
    payload = {
        "id": n, "created_at": created_at.isoformat(), "actor": "alice", "action": "environment.changed",
        "object_type": "environment", "object_id": "1", "release_id": None, "data": {"request_ttl_hours": n},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256((previous + canonical).encode()).hexdigest()
    AuditEvent.objects.create(
        id=n, actor_name="alice", action="environment.changed", object_type="environment", object_id="1",
        data={"request_ttl_hours": n}, created_at=created_at, previous_hash=previous, hash=digest,
    )
    previous = digest
AuditChainHead.objects.create(pk=1, last_event_id=5, last_hash=previous)
TAMPER
hashes = list(AuditEvent.objects.order_by("id").values_list("hash", flat=True))
print(json.dumps({"hashes_before": hashes}), flush=True)

executor = MigrationExecutor(connection)
executor.migrate(executor.loader.graph.leaf_nodes())
from releases.models import AuditEvent
print(json.dumps({"hashes_after": list(AuditEvent.objects.order_by("id").values_list("hash", flat=True))}))
"""


def manage_in(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    print(f"$ manage.py {args[0]}\n{result.stdout}{result.stderr[-3000:]}[exit {result.returncode}]\n")
    return result


def test_an_old_audit_chain_is_verified_then_sealed_and_verifies_intact_after_the_upgrade(empty_database):
    upgrade = manage_in(empty_database, "shell", "-c", OLD_AUDIT_CHAIN.replace("TAMPER", ""))
    assert upgrade.returncode == 0, upgrade.stderr
    before, after = (json.loads(line) for line in upgrade.stdout.strip().splitlines()[-2:])
    # The hashes stay as they were: one recorded elsewhere before the upgrade still names its event.
    assert before["hashes_before"] == after["hashes_after"]

    verified = manage_in(empty_database, "audit_verify")
    assert verified.returncode == 0, verified.stderr
    assert f"audit chain intact: 5 events, last #5 with hash {after['hashes_after'][-1]}" in verified.stdout
    assert "  5 sealed with key " in verified.stdout
    # And the console appends after it, sealed, as ever.
    added = manage_in(
        empty_database,
        "environment_add",
        "staging",
        "--upload-url",
        "http://127.0.0.1:1/",
        "--index-url",
        "http://127.0.0.1:1/simple/",
    )
    assert added.returncode == 0, added.stderr
    assert "audit chain intact: 6 events" in manage_in(empty_database, "audit_verify").stdout


def test_an_old_audit_chain_that_does_not_verify_stops_the_upgrade_unless_accepted(empty_database):
    tamper = 'AuditEvent.objects.filter(pk=3).update(data={"request_ttl_hours": 720})'
    upgrade = manage_in(empty_database, "shell", "-c", OLD_AUDIT_CHAIN.replace("TAMPER", tamper))
    assert upgrade.returncode != 0
    assert (
        "The audit chain does not verify: event #3 does not match its hash (its content was changed). "
        "The upgrade seals only a chain that verifies, and has changed nothing."
    ) in upgrade.stderr
    assert "hashes_after" not in upgrade.stdout

    accepted = manage_in({**empty_database, "AUDIT_UPGRADE_ACCEPT_BROKEN_CHAIN": "true"}, "migrate")
    assert accepted.returncode == 0, accepted.stderr
    assert "audit chain sealed up to #2 only: event #3 does not match its hash" in accepted.stderr
    verified = manage_in(empty_database, "audit_verify")
    assert verified.returncode == 1
    assert "audit chain broken at event #3: event #3 does not match its hash (its content was changed)" in (
        verified.stderr
    )


SQLITE_PERSON_DELETED = """
from django.contrib.auth import get_user_model
from releases.services.projects import environment_create
person = get_user_model().objects.create_user("alice", password="x" * 20)
environment_create(name="staging", upload_url="http://127.0.0.1:1/", index_url="http://127.0.0.1:1/simple/", actor=person)
person.delete()
from releases.models import AuditEvent
print([(e.actor_id, e.actor_name) for e in AuditEvent.objects.all()])
"""


@pytest.mark.parametrize("empty_database", ["sqlite"], indirect=True)
def test_the_embedded_sqlite_database_refuses_to_change_an_audit_event(empty_database):
    assert manage_in(empty_database, "migrate").returncode == 0
    # Deleting a person who acted is the one change let through: their events keep their name.
    deleted = manage_in(empty_database, "shell", "-c", SQLITE_PERSON_DELETED)
    assert deleted.returncode == 0, deleted.stderr
    # The person's creation and deletion (from a shell: the system's,
    # releases.services.people_audit), and her change between them.
    assert "[(None, 'system'), (None, 'alice'), (None, 'system')]" in deleted.stdout

    database = sqlite3.connect(Path(empty_database["CONSOLE_VAR_DIR"]) / "console.sqlite3")
    refused = {
        "UPDATE releases_auditevent SET actor_name = 'mallory'": "audit events are append-only: UPDATE",
        "DELETE FROM releases_auditevent": "audit events are append-only: DELETE",
        "UPDATE releases_auditchainhead SET last_event_id = 0": "the audit chain head only moves forward",
        "DELETE FROM releases_auditchainhead": "the audit chain head only moves forward",
    }
    for statement, message in refused.items():
        with pytest.raises(sqlite3.IntegrityError, match=message):
            database.execute(statement)
    database.close()
    assert "audit chain intact: 3 events" in manage_in(empty_database, "audit_verify").stdout


# Run by `manage.py shell -c`: migrate to 0014, write environments for
# PyPI, Test PyPI and a private index, migrate to the newest, print their rules.
BEFORE_PYPI_RULES = """
import json
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

before = [("releases", "0014_audit_actions_for_second_factors")]
executor = MigrationExecutor(connection)
executor.migrate(before)
Environment = executor.loader.project_state(before).apps.get_model("releases", "Environment")
for name, upload, index in [
    ("pypi", "https://upload.pypi.org/legacy/", "https://pypi.org/simple/"),
    ("test-pypi", "https://test.pypi.org/legacy/", "https://test.pypi.org/simple/"),
    ("private", "https://devpi.example.org/acme/dev/", "https://devpi.example.org/acme/dev/+simple/"),
]:
    Environment.objects.create(name=name, title=name, upload_url=upload, index_url=index)

executor = MigrationExecutor(connection)
executor.migrate(executor.loader.graph.leaf_nodes())
from releases.models import Environment
print(json.dumps(dict(Environment.objects.values_list("name", "pypi_rules"))))
"""


def test_environments_on_pypi_addresses_get_pypis_rules_when_upgrading(empty_database):
    result = manage_in(empty_database, "shell", "-c", BEFORE_PYPI_RULES)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"pypi": True, "test-pypi": True, "private": False}
