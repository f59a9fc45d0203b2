"""The builder's database role (deploy/builder-grants.sql, docs/security.md):
with exactly those grants a builder builds and verifies a release, and
cannot lower an environment's approvals, read a credential, approve, or
make itself an administrator."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from releases.models import Deployment, Release
from releases.services.deployments import deployment_request
from releases.services.projects import project_create
from releases.services.releases import release_create
from tests.conftest import index_environment, wait_built, wait_final
from tests.support.devpi import DevpiServer
from tests.support.sample import SampleRepo
from tests.support.worker import WorkerProcess, child_process_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def builder_role(transactional_db: None) -> Iterator[str]:
    """A login role with the grants of deploy/builder-grants.sql, applied by
    psql as the file says; its database URL."""
    db = connection.settings_dict
    role, password = f"builder_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    host, port, name = db["HOST"] or "127.0.0.1", str(db["PORT"] or 5432), db["NAME"]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD %s", [password])
    try:
        subprocess.run(
            ["psql", "-h", host, "-p", port, "-U", db["USER"] or "postgres", "-d", name, "-v", "ON_ERROR_STOP=1",
             "-v", f"role={role}", "-q", "-f", str(ROOT / "deploy" / "builder-grants.sql")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        yield f"postgres://{role}:{password}@{host}:{port}/{name}"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")


@pytest.fixture
def split_workers(builder_role: str, tmp_path: Path, settings) -> Iterator[str]:
    """A builder on that role, a publisher on the owner's, on queues of their own."""
    queue = f"grants-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    settings.CELERY_BUILDER_QUEUE = f"{queue}.builder"
    base = {**child_process_env(), "CELERY_QUEUE": queue}
    builder_env = {k: v for k, v in base.items() if k != "CONSOLE_TOKEN_KEYS"}
    builder_env.update({"WORKER_ROLE": "builder", "DATABASE_URL": builder_role})
    builder = WorkerProcess(tmp_path, "builder", env=builder_env)
    publisher = WorkerProcess(tmp_path, "publisher", env={**base, "WORKER_ROLE": "publisher"})
    builder.start()
    publisher.start()
    yield builder_role
    builder.stop()
    publisher.stop()


def test_a_builder_with_its_grants_builds_and_verifies_and_can_change_nothing_else(
    split_workers: str, devpi: DevpiServer, tmp_path: Path
) -> None:
    repo = SampleRepo(tmp_path / "granted", name=f"granted-{uuid.uuid4().hex[:8]}")
    repo.commit_version("1.0.0", tag="v1.0.0")
    project = project_create(name=repo.name, source=str(repo.path), actor=None)
    environment = index_environment(devpi.new_index(), f"grants-{uuid.uuid4().hex[:6]}", "Grants", required_approvals=0)

    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    assert release.outcome == Release.Outcome.BUILT, release.reason
    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None))
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    assert {job.kind: job.worker.split("@")[0] for job in release.jobs.all()} == {
        "build": "builder",
        "upload": "publisher",
        "verify": "builder",
    }

    refused = {
        "lower an environment's approvals": "UPDATE releases_environment SET required_approvals = 0",
        "read a credential": "SELECT encrypted_value FROM releases_credential",
        "lower a deployment's approvals": "UPDATE releases_deployment SET required_approvals = 0",
        "send a deployment elsewhere": "UPDATE releases_deployment SET environment_id = environment_id",
        "approve": "INSERT INTO releases_approval (deployment_id) VALUES (1)",
        "become an administrator": "UPDATE auth_user SET is_superuser = true",
        "read password hashes": "SELECT password FROM auth_user",
        "rewrite the audit trail": "DELETE FROM releases_auditevent",
        "change a project's source": "UPDATE releases_project SET source = 'https://example.org/evil.git'",
    }
    allowed = []
    with psycopg.connect(split_workers, autocommit=True) as insider:
        for what, sql in refused.items():
            try:
                insider.execute(sql)
            except psycopg.errors.InsufficientPrivilege:
                continue
            allowed.append(what)
    assert allowed == []
