"""A canary token planted in a credential never appears where people or other
systems can read it: job logs, worker logs, rows, broker messages, pages."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection

from releases.models import Deployment
from releases.services.deployments import deployment_request
from releases.services.projects import environment_create
from releases.services.releases import release_create
from tests.conftest import wait_built, wait_final

CANARY = "pypi-AgEIcHlwaS5vcmcCanary" + secrets.token_hex(20)


class BrokerRecorder:
    """Every command Redis executes, as MONITOR reports it."""

    def __init__(self) -> None:
        self.client = redis.Redis.from_url(settings.REDIS_URL)
        self.lines: list[str] = []
        self._monitor = self.client.monitor()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._monitor as monitor:
            for command in monitor.listen():
                self.lines.append(str(command.get("command", "")))
                if self._stop.is_set():
                    return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.client.ping()  # one more command wakes the listener
        self._thread.join(5)


@pytest.fixture
def broker_recorder() -> Iterator[BrokerRecorder]:
    recorder = BrokerRecorder()
    recorder.start()
    yield recorder
    recorder.stop()


def all_text_in_the_database() -> str:
    """Every text and JSON column of every console table, as PostgreSQL renders it."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT t::text FROM "{table}" AS t')  # noqa: S608 (names from the catalogue)
            chunks.extend(row[0] for row in cursor.fetchall())
    return "\n".join(chunks)


def test_a_canary_token_never_appears_in_logs_rows_messages_or_pages(worker, project, devpi, broker_recorder, client):
    account = devpi.new_index(password=CANARY)
    environment = environment_create(
        name="test-pypi",
        title="Test PyPI",
        upload_url=account.upload_url,
        index_url=account.simple_url,
        username=account.user,
        token=CANARY,
        actor=None,
    )
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None))
    # The token really was used: the upload authenticated with it.
    assert deployment.status == Deployment.Status.SUCCEEDED, deployment.reason

    # A second deployment with a wrong password fails; its error must not echo the token either.
    bad = devpi.new_index()
    failing = environment_create(
        name="broken",
        title="Broken",
        upload_url=bad.upload_url,
        index_url=bad.simple_url,
        username=bad.user,
        token=CANARY,
        actor=None,
    )
    failed = wait_final(deployment_request(release=release, environment=failing, actor=None))
    assert failed.status == Deployment.Status.FAILED

    admin = User.objects.create_superuser("root", "root@example.org", "pw-for-tests-only")
    client.force_login(admin)
    responses = [
        client.get(url)
        for url in [
            "/admin/releases/credential/",
            f"/admin/releases/credential/{environment.credential_id}/change/",
            "/admin/releases/environment/",
            f"/admin/releases/deployment/{deployment.pk}/change/",
            "/admin/releases/job/",
            "/",
            f"/projects/{project.name}/releases/1.0.0/",
            "/history/",
        ]
    ]
    assert [r.status_code for r in responses] == [200] * len(responses)
    pages = [r.content.decode() for r in responses]

    assert CANARY not in all_text_in_the_database()
    assert CANARY not in worker.log_text()
    assert not [line for line in broker_recorder.lines if CANARY in line]
    assert len(broker_recorder.lines) > 0
    for page in pages:
        assert CANARY not in page
