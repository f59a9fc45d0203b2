from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from releases.models import Deployment, Environment, Project, Release
from releases.services.projects import environment_create, project_create
from releases.steps.sandbox import sandbox_status
from tests.support.devpi import DevpiServer, IndexAccount
from tests.support.osv_standin import OsvStandin
from tests.support.pypi_standin import PypiStandin
from tests.support.pypistats_standin import PypistatsStandin
from tests.support.sample import SampleRepo
from tests.support.worker import WorkerPair


@pytest.fixture(scope="session")
def devpi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevpiServer]:
    server = DevpiServer(tmp_path_factory.mktemp("devpi"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def worker_process(django_db_setup: None, django_db_blocker, tmp_path_factory) -> Iterator[WorkerPair]:
    with django_db_blocker.unblock():
        worker = WorkerPair(tmp_path_factory.mktemp("workers"))
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(worker_process: WorkerPair, transactional_db: None) -> Iterator[WorkerPair]:
    """Live Celery workers, a builder and a publisher, on Redis and the test
    database (rows are committed)."""
    if not worker_process.alive():
        worker_process.start()
    yield worker_process
    if not worker_process.alive():
        worker_process.start()


@pytest.fixture
def sample_repo(tmp_path: Path) -> SampleRepo:
    repo = SampleRepo(tmp_path / "sample-pkg")
    repo.commit_version("1.0.0", tag="v1.0.0")
    return repo


@pytest.fixture
def index_account(devpi: DevpiServer) -> IndexAccount:
    return devpi.new_index()


@pytest.fixture
def project(sample_repo: SampleRepo, db: None) -> Project:
    return project_create(name=sample_repo.name, source=str(sample_repo.path), actor=None)


def index_environment(account: IndexAccount, name: str, title: str, **options: Any) -> Environment:
    """An environment that publishes to a devpi index with the index's own
    account (``token=`` gives another)."""
    options.setdefault("token", account.password)
    return environment_create(
        name=name,
        title=title,
        upload_url=account.upload_url,
        index_url=account.simple_url,
        username=account.user,
        actor=None,
        **options,
    )


@pytest.fixture
def sandbox(index_account: IndexAccount, db: None) -> Environment:
    return index_environment(index_account, "test-pypi", "Test PyPI")


@pytest.fixture
def pypi_account(devpi: DevpiServer) -> IndexAccount:
    """A second devpi index, standing for production PyPI."""
    return devpi.new_index()


@pytest.fixture
def pypi(pypi_account: IndexAccount, sandbox: Environment) -> Environment:
    """The PyPI stand-in: one approval, and a success on test-pypi first."""
    return index_environment(pypi_account, "pypi", "PyPI", required_approvals=1, after="test-pypi")


def wait_for(predicate: Callable[[], object], timeout: float = 90, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_built(release: Release, timeout: float = 120) -> Release:
    def done() -> Release | None:
        current = Release.objects.get(pk=release.pk)
        return None if current.is_building else current

    return wait_for(done, timeout)  # type: ignore[return-value]


def wait_final(deployment: Deployment, timeout: float = 120) -> Deployment:
    def done() -> Deployment | None:
        current = Deployment.objects.get(pk=deployment.pk)
        return current if current.state == Deployment.State.FINISHED else None

    return wait_for(done, timeout)  # type: ignore[return-value]


def served(deployment: Deployment) -> dict[str, str]:
    """What the index served of each file when the deployment verified it (its summary)."""
    return {name: file["index_sha256"] for name, file in deployment.summary["files"].items()}


@pytest.fixture(autouse=True)
def _close_connection_after_test() -> Iterator[None]:
    yield
    connection.close()


@receiver(connection_created)
def _let_the_test_runner_empty_the_audit_tables(sender: object, **kwargs: Any) -> None:
    """Django empties every table with TRUNCATE between transactional tests.

    The audit tables refuse TRUNCATE unless a superuser's session asks for it
    (migration 0012_audit_append_only); this process's own connections ask.
    An insider's connection, like the raw ones of tests/test_audit_tamper.py,
    does not.
    """
    database: BaseDatabaseWrapper = kwargs["connection"]
    if database.vendor == "postgresql":
        with database.cursor() as cursor:
            cursor.execute("SET release_console.audit_truncate = 'allowed'")


@pytest.fixture(scope="module")
def sandbox_works() -> None:
    """Skip where the sandbox cannot run here, with bubblewrap's reason."""
    status = sandbox_status()
    if not status.usable:
        pytest.skip(f"the sandbox does not work on this host: {status.reason}")


@pytest.fixture(scope="session")
def osv() -> Iterator[OsvStandin]:
    """The OSV stand-in, on the port OSV_API_URL names (tests/environment.py)."""
    from django.conf import settings

    server = OsvStandin(port=int(settings.OSV_API_URL.rsplit(":", 1)[1])).start()
    yield server
    server.stop()


@pytest.fixture
def osv_clean(osv: OsvStandin) -> Iterator[OsvStandin]:
    osv.records.clear()
    osv.affects.clear()
    osv.failing = False
    osv.page_size = 0
    osv.requests.clear()
    yield osv
    osv.records.clear()
    osv.affects.clear()
    osv.failing = False
    osv.page_size = 0


@pytest.fixture
def pypi_standin() -> Iterator[PypiStandin]:
    """A PyPI of the test's own (upload, simple and JSON APIs) on a free loopback port."""
    standin = PypiStandin().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def pypistats() -> Iterator[PypistatsStandin]:
    from django.conf import settings

    port = int(settings.PYPISTATS_API_URL.removesuffix("/api").rsplit(":", 1)[1])
    server = PypistatsStandin(port=port).start()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    import sys

    for name in ("tests.test_chaos", "tests.test_hosts"):
        module = sys.modules.get(name)
        if module is not None:
            module.print_summary(terminalreporter.write_line)
