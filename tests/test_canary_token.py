"""A canary token planted in a credential never appears in plaintext where
people or other systems can read it: a dump of the database, the worker's
log, job logs, errors, broker messages, and pages."""

from __future__ import annotations

import secrets
import string
import subprocess
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from releases.models import Deployment, JobLogLine, Sbom
from releases.services.deployments import deployment_request
from releases.services.releases import release_create
from tests.conftest import index_environment, wait_built, wait_final, wait_for
from tests.support.broker import BrokerRecorder
from tests.support.insider import verify_session

CANARY = "pypi-AgEIcHlwaS5vcmc" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(40))


@pytest.fixture
def broker() -> Iterator[BrokerRecorder]:
    recorder = BrokerRecorder(settings.REDIS_URL)
    recorder.start()
    yield recorder
    recorder.stop()


def database_dump() -> str:
    db = connection.settings_dict
    return subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "-h",
            db["HOST"] or "127.0.0.1",
            "-p",
            str(db["PORT"] or 5432),
            "-U",
            db["USER"] or "postgres",
            db["NAME"],
        ],
        check=True,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": db["PASSWORD"] or ""},
    ).stdout


def test_a_planted_token_is_absent_from_the_dump_logs_errors_broker_and_pages(
    worker, project, devpi, osv_clean, broker, client
):
    account = devpi.new_index(password=CANARY)
    environment = index_environment(account, "test-pypi", "Test PyPI", token=CANARY)
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None))
    # The token was really used: the index accepted the uploads it authenticated.
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    assert devpi.upload_requests(account) >= 1
    wait_for(lambda: Sbom.objects.filter(release=release, scanned_at__isnull=False).exists())
    # The same token refused by another index: the failure must not echo it either.
    other = devpi.new_index()
    refusing = index_environment(other, "refusing", "Refusing", token=CANARY)
    failed = wait_final(deployment_request(release=release, environment=refusing, actor=None))
    assert failed.outcome == Deployment.Outcome.FAILED

    admin = User.objects.create_superuser("root", "root@example.org", "pw-for-tests-only")
    client.force_login(admin)
    verify_session(client, admin)
    urls = [
        "/",
        "/history/",
        "/audit/",
        f"/projects/{project.name}/releases/1.0.0/",
        f"/projects/{release.project.name}/releases/{release.version}/sbom/",
        f"/projects/{release.project.name}/releases/{release.version}/sbom.json",
        f"/deployments/{deployment.pk}/summary/",
        f"/deployments/{deployment.pk}/summary.md",
        f"/deployments/{failed.pk}/summary/",
        "/admin/releases/credential/",
        f"/admin/releases/credential/{environment.credential_id}/change/",
        "/admin/releases/environment/",
        f"/admin/releases/deployment/{failed.pk}/change/",
        "/admin/releases/job/",
    ]
    responses = {url: client.get(url) for url in urls}
    assert {url: r.status_code for url, r in responses.items()} == dict.fromkeys(urls, 200)

    dump = database_dump()
    job_logs = "\n".join(JobLogLine.objects.values_list("text", flat=True))
    assert "COPY public.releases_credential" in dump  # the dump really holds the tables
    assert "sample-pkg" in dump
    assert CANARY not in dump
    assert "==> done" in job_logs
    assert CANARY not in job_logs
    assert CANARY not in failed.reason
    assert "releases.tasks.run_job" in worker.log_text()
    assert CANARY not in worker.log_text()
    assert broker.lines
    assert not [line for line in broker.lines if CANARY in line]
    for url, response in responses.items():
        assert CANARY not in response.content.decode(), url
