"""What the console pages show: sign-in throttling, files, logs, credentials."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from releases.models import Artifact, AuditEvent, Credential, Deployment, FailureTally, Job, JobLogLine, Release
from releases.selectors.dashboard import deployment_board
from releases.services.credentials import credential_reveal
from releases.services.sign_in import failure_reports_flush
from tests.support.console import (
    PASSWORD,
    DeploymentFactory,
    EnvironmentFactory,
    ProjectFactory,
    ReleaseFactory,
    person_with_role,
)
from tests.support.insider import verify_session


def signed_in(role: str) -> Client:
    client = Client()
    user = person_with_role(role)
    client.force_login(user)
    # The admin site asks for a session verified with a second factor.
    return verify_session(client, user) if role == "admin" else client


@pytest.mark.django_db
def test_failed_sign_ins_are_audited_and_lock_the_account_for_a_while():
    person_with_role("viewer", username="carol")
    client = Client()
    login = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(login, {"username": "carol", "password": "wrong"})
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    assert client.post(login, {"username": "carol", "password": "wrong"}).status_code == 429

    # Locked: even the right password is refused now.
    response = client.post(login, {"username": "carol", "password": PASSWORD})
    assert response.status_code == 429
    assert "Sign-in locked for a while" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # One event at once; the failures after it within the minute are
    # tallied, and reported with their count once the minute has passed.
    events = AuditEvent.objects.filter(action="auth.login_failed")
    assert [e.data["failures"] for e in events] == [1]
    FailureTally.objects.update(reported_at=timezone.now() - timedelta(seconds=settings.FAILURE_AUDIT_INTERVAL))
    assert failure_reports_flush() == 1
    assert [e.data["failures"] for e in events.order_by("id")] == [1, settings.AXES_FAILURE_LIMIT]
    assert {e.data["username"] for e in events} == {"carol"}
    assert all("wrong" not in str(e.data) for e in events)


@pytest.mark.django_db
def test_sign_in_with_the_right_password_opens_the_dashboard():
    person_with_role("viewer", username="dave")
    client = Client()
    response = client.post(reverse("login"), {"username": "dave", "password": PASSWORD}, follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == "/"
    assert b"Deployment board" in response.content


@pytest.mark.django_db
def test_artifacts_download_through_a_signed_in_view():
    release = ReleaseFactory(project__name="sample-pkg", version="1.0.0")
    body = b"wheel bytes\x00\x01"
    path = storages["artifacts"].save("sample-pkg/1.0.0/sample_pkg-1.0.0-py3-none-any.whl", ContentFile(body))
    artifact = Artifact.objects.create(
        release=release,
        filename="sample_pkg-1.0.0-py3-none-any.whl",
        kind="wheel",
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        path=path,
    )
    url = reverse("releases:artifact_download", args=[artifact.pk, artifact.filename])
    assert Client().get(url).status_code == 302

    response = signed_in("viewer").get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == body
    assert 'filename="sample_pkg-1.0.0-py3-none-any.whl"' in response["Content-Disposition"]
    assert signed_in("viewer").get(url.replace(artifact.filename, "other.whl")).status_code == 404


@pytest.mark.django_db
def test_a_long_log_shows_its_tail_and_pages_backwards():
    release = ReleaseFactory(project__name="sample-pkg", version="1.0.0")
    job = Job.objects.create(kind=Job.Kind.BUILD, release=release, state=Job.State.FINISHED, log_lines=500)
    now = timezone.now()
    JobLogLine.objects.bulk_create(
        JobLogLine(job=job, number=n, text=f"line {n:04d}", created_at=now) for n in range(1, 501)
    )
    client = signed_in("viewer")
    page = client.get(reverse("releases:release", args=["sample-pkg", "1.0.0"])).content.decode()
    assert "line 0500" in page and "line 0301" in page and "line 0300" not in page
    earlier = reverse("releases:job_log", args=[job.pk]) + "?before=301"
    assert earlier.replace("&", "&amp;") in page

    older = client.get(earlier).content.decode()
    assert "line 0101" in older and "line 0300" in older
    assert "line 0100" not in older and "line 0301" not in older
    assert "?before=101" in older  # and further back still
    oldest = client.get(reverse("releases:job_log", args=[job.pk]) + "?before=101").content.decode()
    assert "line 0001" in oldest and "Show earlier" not in oldest


@pytest.mark.django_db
def test_a_finished_release_page_does_not_poll_and_a_running_one_does():
    release = ReleaseFactory(project__name="sample-pkg", version="1.0.0")
    job = Job.objects.create(
        kind=Job.Kind.BUILD, release=release, state=Job.State.RUNNING, step="uv build", started_at=timezone.now()
    )
    client = signed_in("viewer")
    url = reverse("releases:release", args=["sample-pkg", "1.0.0"])
    running = client.get(url).content.decode()
    assert 'hx-trigger="every 1s [' in running and 'data-poll-most="8"' in running  # backs off to 8 s
    assert "uv build" in running
    Job.objects.filter(pk=job.pk).update(state=Job.State.FINISHED, outcome="succeeded", finished_at=timezone.now())
    assert "hx-trigger" not in client.get(url).content.decode()


@pytest.mark.django_db
def test_credential_admin_never_shows_the_secret_again():
    client = signed_in("admin")
    # Assembled at run time, so that no token-shaped literal sits in the repository.
    token = "-".join(["pypi", "AgEIcHlwaS5vcmc" + "x" * 30 + "XYZ9"])
    response = client.post(
        reverse("admin:releases_credential_add"),
        {"name": "pypi upload", "kind": "index_token", "scope": "project", "username": "__token__", "token": token},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = Credential.objects.get(name="pypi upload")
    assert credential.last_four == "XYZ9"
    assert token.encode() not in bytes(credential.encrypted_value)
    assert credential_reveal(credential) == token

    change = client.get(reverse("admin:releases_credential_change", args=[credential.pk])).content.decode()
    listing = client.get(reverse("admin:releases_credential_changelist")).content.decode()
    for page in (change, listing):
        assert token not in page
        assert token[:-4] not in page
    assert "…XYZ9" in listing

    new = "-".join(["pypi", "second", "token", "value", "ABCD"])
    client.post(
        reverse("admin:releases_credential_change", args=[credential.pk]),
        {"name": "pypi upload", "kind": "index_token", "scope": "project", "username": "__token__", "token": new},
    )
    credential.refresh_from_db()
    assert credential_reveal(credential) == new
    assert list(AuditEvent.objects.filter(object_type="credential").values_list("action", flat=True)) == [
        "credential.created",
        "credential.replaced",
    ]


@pytest.mark.django_db
def test_history_is_read_only_in_the_admin_even_for_a_superuser():
    client = Client()
    root = User.objects.create_superuser("root", password=PASSWORD)
    client.force_login(root)
    verify_session(client, root)
    release = ReleaseFactory(project__name="sample-pkg", version="1.0.0")
    assert client.get(reverse("admin:releases_release_change", args=[release.pk])).status_code == 200
    assert client.get(reverse("admin:releases_release_add")).status_code == 403
    response = client.post(reverse("admin:releases_release_change", args=[release.pk]), {"version": "9.9.9"})
    assert response.status_code == 403
    assert Release.objects.get(pk=release.pk).version == "1.0.0"


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_publish_clicks_start_one_deployment():
    # Still building: the deployment waits for the build, so no job is sent.
    release = ReleaseFactory(project__name="sample-pkg", version="1.0.0", state=Release.State.BUILDING, outcome="")
    environment = EnvironmentFactory(name="test-pypi", title="Test PyPI")
    user = person_with_role("releaser")
    url = reverse("releases:release_publish", args=["sample-pkg", "1.0.0", "test-pypi"])
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def click() -> None:
        client = Client()
        client.force_login(user)
        barrier.wait()
        statuses.append(client.post(url).status_code)
        connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [302, 302]
    assert Deployment.objects.filter(release=release, environment=environment).count() == 1


@pytest.mark.django_db
def test_the_board_shows_what_is_live_and_the_latest_attempt_of_each_project_on_each_environment():
    test_pypi = EnvironmentFactory(name="test-pypi", title="Test PyPI", position=0)
    pypi = EnvironmentFactory(name="pypi", title="PyPI", position=1, required_approvals=1)
    alpha, beta = ProjectFactory(name="alpha"), ProjectFactory(name="beta")

    def deploy(project, version, environment, where):  # type: ignore[no-untyped-def]
        finished = where in Deployment.Outcome.values
        return DeploymentFactory(
            release=ReleaseFactory(project=project, version=version),
            environment=environment,
            state=Deployment.State.FINISHED if finished else where,
            outcome=where if finished else "",
        )

    State, Outcome = Deployment.State, Deployment.Outcome
    deploy(alpha, "1.0.0", test_pypi, Outcome.SUCCEEDED)
    deploy(alpha, "1.1.0", test_pypi, Outcome.FAILED)
    deploy(alpha, "0.9.0", pypi, Outcome.SUCCEEDED)
    deploy(beta, "2.0.0", test_pypi, Outcome.FAILED)
    # A newer success of another project on the same environment is not alpha's.
    deploy(beta, "2.1.0", pypi, Outcome.SUCCEEDED)
    deploy(beta, "2.2.0", pypi, State.PENDING_APPROVAL)

    def versions(board):  # type: ignore[no-untyped-def]
        return {
            project.name: [
                (cell.live.release.version if cell.live else None, cell.latest.release.version if cell.latest else None)
                for cell in cells
            ]
            for project, cells in board.rows()
        }

    with CaptureQueriesContext(connection) as queries:
        board = deployment_board()
    assert len(queries) == 3
    assert versions(board) == {
        "alpha": [("1.0.0", "1.1.0"), ("0.9.0", "0.9.0")],
        "beta": [(None, "2.0.0"), ("2.1.0", "2.2.0")],
    }
    # Every deployment keeps its release's project, for the board's index.
    assert all(d.project_id == d.release.project_id for d in Deployment.objects.select_related("release"))

    page = signed_in("viewer").get(reverse("releases:dashboard")).content.decode()
    assert "nothing live" in page and "Pending approval" in page


@pytest.mark.django_db
def test_a_live_poll_answers_304_until_something_it_shows_changes():
    release = ReleaseFactory(project__name="sample-pkg", version="1.0.0")
    environment = EnvironmentFactory(name="test-pypi", title="Test PyPI")
    client = signed_in("viewer")
    url = reverse("releases:release_live", args=["sample-pkg", "1.0.0"])

    first = client.get(url)
    assert first.status_code == 200 and first["ETag"]
    with CaptureQueriesContext(connection) as queries:
        again = client.get(url, headers={"If-None-Match": first["ETag"]})
    assert again.status_code == 304 and again.content == b""
    fingerprint = [q["sql"] for q in queries if "releases_" in q["sql"]]
    assert len(fingerprint) <= 8, fingerprint  # a few probes, not the page's queries

    DeploymentFactory(release=release, environment=environment, state=Deployment.State.QUEUED, outcome="")
    changed = client.get(url, headers={"If-None-Match": first["ETag"]})
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    assert "Queued" in changed.content.decode()
