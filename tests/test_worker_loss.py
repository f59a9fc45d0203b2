"""A worker killed with SIGKILL mid-upload: the reaper finishes the story."""

from __future__ import annotations

from releases.models import Deployment, DeploymentFile, Job, Release
from releases.services.deployments import deployment_request
from releases.services.reaper import jobs_reap
from releases.services.releases import release_create
from tests.conftest import wait_built, wait_final, wait_for


def test_a_worker_killed_mid_upload_ends_the_deployment_and_the_index_holds_each_file_once(
    worker, project, sandbox, devpi, index_account
):
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    assert release.outcome == Release.Outcome.BUILT
    deployment = deployment_request(release=release, environment=sandbox, actor=None)

    # Kill the worker once the sdist is on the index and the upload job is still running.
    sdist = release.artifacts.get(kind="sdist")
    wait_for(lambda: devpi.stored_count(index_account, sdist.filename) >= 1, timeout=60, interval=0.02)
    killed_while = Job.objects.get(deployment=deployment, kind=Job.Kind.UPLOAD).state
    worker.kill()
    assert killed_while == Job.State.RUNNING

    # The job is stale (no heartbeat); the reaper gives it to the next worker.
    wait_for(lambda: jobs_reap().requeued, timeout=30, interval=0.5)
    worker.start()
    final = wait_final(deployment, timeout=120)

    assert final.outcome == Deployment.Outcome.SUCCEEDED, final.reason
    upload = Job.objects.get(deployment=deployment, kind=Job.Kind.UPLOAD)
    assert upload.attempts == 2
    for artifact in release.artifacts.all():
        assert devpi.stored_count(index_account, artifact.filename) == 1
    assert {f.state for f in final.files.all()} == {DeploymentFile.State.VERIFIED}


def test_a_job_whose_worker_never_returns_fails_with_a_reason_after_its_attempts(worker, project, sandbox, settings):
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    deployment = deployment_request(release=release, environment=sandbox, actor=None)
    upload = Job.objects.get(deployment=deployment, kind=Job.Kind.UPLOAD)
    wait_for(lambda: Job.objects.get(pk=upload.pk).state == Job.State.FINISHED, timeout=60)
    wait_final(deployment)
    # A job stuck in RUNNING with its last allowed attempt, its worker gone.
    from datetime import timedelta

    from django.utils import timezone

    stuck_release = wait_built(release_create(project=project, version="1.0.0.post1", ref="v1.0.0", actor=None))
    assert stuck_release.outcome == Release.Outcome.FAILED  # metadata says 1.0.0
    job = Job.objects.create(
        kind=Job.Kind.BUILD,
        release=stuck_release,
        state=Job.State.RUNNING,
        attempts=settings.JOB_MAX_ATTEMPTS,
        heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    report = jobs_reap()
    job.refresh_from_db()
    assert job.pk in report.failed
    assert job.state == Job.State.FINISHED
    assert job.outcome == Job.Outcome.FAILED
    assert "stopped answering" in job.reason


def test_a_queued_job_whose_message_the_broker_lost_is_sent_again_by_the_reaper(worker, project):
    from datetime import timedelta

    from django.utils import timezone

    # The row was committed but its message never reached Redis.
    release = Release.objects.create(project=project, version="1.0.0", ref="v1.0.0")
    job = Job.objects.create(kind=Job.Kind.BUILD, release=release)
    Job.objects.filter(pk=job.pk).update(sent_at=timezone.now() - timedelta(minutes=5))

    report = jobs_reap()

    assert report.resent == [job.pk]
    built = wait_built(release)
    assert built.outcome == Release.Outcome.BUILT
    assert Job.objects.get(pk=job.pk).attempts == 1
