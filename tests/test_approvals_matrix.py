"""Four eyes on production pushes, against a real worker and two devpi indexes.

"test-pypi" and "pypi" are two indexes on the devpi fixture; pypi needs one
approval, a second factor, and a success on test-pypi first. In every case
that is refused, the pypi index receives nothing.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from releases.clients.index import list_files
from releases.models import Approval, AuditEvent, Deployment, Job, Release
from releases.services.approvals import (
    ApprovalRefused,
    approval_bypass,
    approval_give,
    artifact_digests,
)
from releases.services.deployments import deployment_cancel, deployment_request
from releases.services.projects import environment_update
from releases.services.releases import release_create
from releases.tasks import reap
from tests.conftest import served, wait_built, wait_final
from tests.support.devpi import DevpiServer, IndexAccount
from tests.support.people import make_user

State = Deployment.State
Outcome = Deployment.Outcome


@pytest.fixture
def people(transactional_db):
    return {
        "releaser": make_user("rita", "releaser", approver=True),
        "approver": make_user("alice", approver=True),
        "second": make_user("bob", approver=True),
        "outsider": make_user("oscar"),
        "admin": make_user("root", superuser=True),
    }


@pytest.fixture
def built(worker, project) -> Release:
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    assert release.is_built, release.reason
    return release


@pytest.fixture
def on_test_pypi(built, sandbox, people) -> Deployment:
    deployment = wait_final(deployment_request(release=built, environment=sandbox, actor=people["releaser"]))
    assert deployment.outcome == Outcome.SUCCEEDED, deployment.reason
    return deployment


@pytest.fixture
def pending(on_test_pypi, built, pypi, people) -> Deployment:
    deployment = deployment_request(release=built, environment=pypi, actor=people["releaser"])
    assert deployment.state == State.PENDING_APPROVAL
    return deployment


def approve(deployment: Deployment, user, *, decision="approve", digests=None, second_factor=True, comment=""):
    return approval_give(
        deployment,
        user,
        decision,
        comment=comment,
        digests_seen=artifact_digests(deployment) if digests is None else digests,
        second_factor_verified=second_factor,
    )


def assert_nothing_reached(devpi: DevpiServer, account: IndexAccount, deployment: Deployment) -> None:
    assert devpi.upload_requests(account) == 0
    assert list_files(account.simple_url, deployment.release.project.name) == {}
    assert not Job.objects.filter(deployment=deployment, kind=Job.Kind.UPLOAD, outcome=Job.Outcome.SUCCEEDED).exists()


def test_an_approved_push_sends_the_bytes_verified_on_test_pypi(pending, on_test_pypi, people, devpi, pypi_account):
    approval = approve(pending, people["approver"], comment="Checked the files.")
    assert approval.digests == artifact_digests(pending)

    done = wait_final(pending)

    assert done.outcome == Outcome.SUCCEEDED, done.reason
    name = done.release.project.name
    first = {f: i.sha256 for f, i in list_files(on_test_pypi.environment.index_url, name).items()}
    second = {f: i.sha256 for f, i in list_files(pypi_account.simple_url, name).items()}
    assert second == first == {a.filename: a.sha256 for a in done.release.artifacts.all()}
    # Verify on pypi checked the same digests as on test-pypi.
    assert served(done) == served(on_test_pypi) == first
    # Built once: the promotion did not build again.
    assert Job.objects.filter(release=done.release, kind=Job.Kind.BUILD).count() == 1
    actions = list(
        AuditEvent.objects.filter(object_type="deployment", object_id=str(done.pk)).values_list("action", flat=True)
    )
    assert actions == [
        "deployment.requested",
        "deployment.approved",
        "deployment.queued",
        "deployment.uploading",
        "deployment.verifying",
        "deployment.succeeded",
    ]
    given = AuditEvent.objects.get(action="approval.given")
    assert given.actor_name == "alice" and given.data["digests"] == approval.digests


def test_approvers_are_emailed_when_a_push_is_requested(pending, people):
    recipients = sorted(address for message in mail.outbox for address in message.to)
    # Every approver but the requester; not the person without the permission.
    assert recipients == ["alice@example.org", "bob@example.org", "root@example.org"]
    message = next(m for m in mail.outbox if m.to == ["alice@example.org"])
    assert "rita asks to publish sample-pkg 1.0.0 to PyPI" in message.body
    assert f"/deployments/{pending.pk}/approval/" in message.body
    for artifact in pending.release.artifacts.all():
        assert artifact.sha256 in message.body


def test_a_push_to_pypi_before_test_pypi_succeeded_is_refused(built, pypi, people, devpi, pypi_account):
    with pytest.raises(ValidationError) as refused:
        deployment_request(release=built, environment=pypi, actor=people["releaser"])

    assert "must be published and verified on Test PyPI before it can go to PyPI" in refused.value.messages[0]
    assert not Deployment.objects.filter(environment=pypi).exists()
    assert devpi.upload_requests(pypi_account) == 0


def test_the_requester_cannot_approve_their_own_push(pending, people, devpi, pypi_account):
    with pytest.raises(ApprovalRefused) as refused:
        approve(pending, people["releaser"])

    assert refused.value.forbidden
    assert "another person must approve it" in refused.value.message
    assert AuditEvent.objects.filter(action="approval.refused", actor_name="rita").exists()
    # The database refuses it too, whatever code writes the row.
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            deployment=pending,
            approver=people["releaser"],
            requested_by=people["releaser"],
            decision="approve",
            digests=artifact_digests(pending),
        )
    pending.refresh_from_db()
    assert pending.state == State.PENDING_APPROVAL
    assert_nothing_reached(devpi, pypi_account, pending)


def test_a_second_approval_by_the_same_person_does_not_count(pending, pypi, people, devpi, pypi_account):
    Deployment.objects.filter(pk=pending.pk).update(required_approvals=2)
    approve(pending, people["approver"])

    with pytest.raises(ApprovalRefused) as refused:
        approve(pending, people["approver"])

    assert "each person decides once" in refused.value.message
    assert Approval.objects.filter(deployment=pending).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Approval.objects.create(
            deployment=pending, approver=people["approver"], decision="approve", digests=artifact_digests(pending)
        )
    pending.refresh_from_db()
    assert pending.state == State.PENDING_APPROVAL
    assert_nothing_reached(devpi, pypi_account, pending)


def test_two_required_approvals_need_two_different_people(pending, people, devpi, pypi_account):
    Deployment.objects.filter(pk=pending.pk).update(required_approvals=2)
    approve(pending, people["approver"])
    pending.refresh_from_db()
    assert pending.state == State.PENDING_APPROVAL

    approve(pending, people["second"])

    assert wait_final(pending).outcome == Outcome.SUCCEEDED


def test_an_approval_for_other_files_is_refused(pending, people, devpi, pypi_account):
    seen = artifact_digests(pending)
    seen[0] = "0" * 64

    with pytest.raises(ApprovalRefused) as refused:
        approve(pending, people["approver"], digests=seen)

    assert "sha256 digests differ" in refused.value.message
    assert not Approval.objects.filter(deployment=pending).exists()
    assert_nothing_reached(devpi, pypi_account, pending)


def test_an_approver_without_the_permission_is_refused(pending, people, devpi, pypi_account):
    with pytest.raises(ApprovalRefused) as refused:
        approve(pending, people["outsider"])

    assert refused.value.forbidden
    assert "does not have the permission" in refused.value.message
    assert_nothing_reached(devpi, pypi_account, pending)


def test_an_expired_request_cannot_be_approved_and_the_reaper_ends_it(pending, people, devpi, pypi_account):
    Deployment.objects.filter(pk=pending.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    with pytest.raises(ApprovalRefused) as refused:
        approve(pending, people["approver"])
    assert "expired" in refused.value.message

    reap()  # the beat task that reaps jobs also ends expired requests
    pending.refresh_from_db()
    assert pending.outcome == Outcome.EXPIRED
    assert "No decision within 168 hours" in pending.reason
    assert AuditEvent.objects.filter(action="deployment.expired", object_id=str(pending.pk)).exists()
    with pytest.raises(ApprovalRefused):
        approve(pending, people["approver"])
    assert_nothing_reached(devpi, pypi_account, pending)


def test_an_approval_without_a_second_factor_is_refused_where_required(pending, pypi, people, devpi, pypi_account):
    assert pypi.require_second_factor

    with pytest.raises(ApprovalRefused) as refused:
        approve(pending, people["approver"], second_factor=False)

    assert "second factor" in refused.value.message
    assert not Approval.objects.filter(deployment=pending).exists()
    assert_nothing_reached(devpi, pypi_account, pending)


def test_a_rejection_ends_the_deployment(pending, people, devpi, pypi_account):
    approve(pending, people["approver"], decision="reject", comment="Changelog is missing.")

    pending.refresh_from_db()
    assert pending.outcome == Outcome.REJECTED
    assert pending.reason == "Rejected by alice: Changelog is missing."
    with pytest.raises(ApprovalRefused):
        approve(pending, people["second"])
    assert_nothing_reached(devpi, pypi_account, pending)


@pytest.mark.parametrize("void", ["cancelled", "approval_changed_in_database", "second_factor_flag_cleared"])
def test_an_approval_voided_after_queueing_stops_the_upload_task(void, pending, people, devpi, pypi_account, worker):
    """The upload was queued, then the approval stopped holding before the worker ran it."""
    worker.stop()
    approve(pending, people["approver"])
    pending.refresh_from_db()
    assert pending.state == State.QUEUED
    if void == "cancelled":
        deployment_cancel(pending, actor=people["releaser"])
    elif void == "approval_changed_in_database":
        Approval.objects.filter(deployment=pending).update(digests=["0" * 64])
    else:
        Approval.objects.filter(deployment=pending).update(second_factor=False)
    worker.start()

    done = wait_final(pending)

    if void == "cancelled":
        assert done.outcome == Outcome.CANCELLED
        job = Job.objects.get(deployment=pending, kind=Job.Kind.UPLOAD)
        assert job.outcome == Job.Outcome.CANCELLED
    else:
        assert done.outcome == Outcome.FAILED
        assert "Not uploaded: 0 of 1 required approvals are valid" in done.reason
    assert_nothing_reached(devpi, pypi_account, pending)


def test_administrators_cannot_bypass_approvals_by_default(pending, people, devpi, pypi_account):
    with pytest.raises(ApprovalRefused) as refused:
        approval_bypass(pending, people["admin"], reason="hotfix")

    assert "cannot bypass" in refused.value.message
    pending.refresh_from_db()
    assert pending.state == State.PENDING_APPROVAL
    assert_nothing_reached(devpi, pypi_account, pending)


def test_a_bypass_allowed_by_the_setting_is_audited(pending, people, settings):
    settings.APPROVALS_ADMIN_BYPASS = True
    with pytest.raises(ApprovalRefused):
        approval_bypass(pending, people["approver"], reason="not an administrator")

    approval_bypass(pending, people["admin"], reason="Security fix, approver away.")

    assert wait_final(pending).outcome == Outcome.SUCCEEDED
    event = AuditEvent.objects.get(action="approval.bypassed")
    assert event.actor_name == "root"
    assert event.data["required_approvals"] == 1
    assert event.data["reason"] == "Security fix, approver away."


def test_environment_rules_are_copied_when_the_push_is_requested(on_test_pypi, built, pypi, people):
    environment_update(pypi, required_approvals=2, request_ttl_hours=1, actor=people["admin"])
    deployment = deployment_request(release=built, environment=pypi, actor=people["releaser"])
    assert deployment.required_approvals == 2
    assert deployment.expires_at is not None
    assert timedelta(minutes=59) < deployment.expires_at - timezone.now() <= timedelta(hours=1)
