"""Least privilege by process: the jobs that run package code go to the
builders, which hold no token key ring; the jobs that hold tokens go to the
publishers, which never run package code (docs/security.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from releases.models import Job
from releases.services.credentials import credential_create, credential_reveal
from releases.services.jobs import PACKAGE_CODE_KINDS, job_queue
from releases.services.pipeline import job_run
from tests.support.worker import child_process_env
from tests.test_settings import PRODUCTION, production_secrets, run_manage

ROOT = Path(__file__).resolve().parent.parent


def test_each_kind_of_job_goes_to_its_role_s_queue(settings):
    queues = {kind: job_queue(kind) for kind in Job.Kind.values}
    builder, publisher = settings.CELERY_BUILDER_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE
    assert queues == {
        "build": builder,
        "collect": publisher,
        "verify": builder,
        "upload": publisher,
        "dispatch": publisher,
        "track": publisher,
        "scan": publisher,
        "webhook": publisher,
    }
    assert {"build", "verify"} == PACKAGE_CODE_KINDS


@pytest.mark.parametrize(
    ("role", "consumed"),
    [("builder", ["{q}.builder"]), ("publisher", ["{q}"]), ("all", ["{q}", "{q}.builder"])],
)
def test_a_worker_consumes_the_queues_of_its_role(role, consumed):
    code = "import json; from django.conf import settings; print(json.dumps([q.name for q in settings.CELERY_TASK_QUEUES]))"
    env = {**child_process_env(), "WORKER_ROLE": role, "CELERY_QUEUE": "roles"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [q.format(q="roles") for q in consumed]


def test_a_builder_loads_no_key_ring_and_refuses_to_decrypt_a_credential(transactional_db):
    credential = credential_create(name="index", value="pypi-" + "s" * 40)
    code = (
        "import json; from django.conf import settings; from releases.models import Credential; "
        "from releases.services.credentials import CredentialError, credential_reveal\n"
        "try:\n    credential_reveal(Credential.objects.get(name='index')); said = 'decrypted'\n"
        "except CredentialError as exc:\n    said = str(exc)\n"
        "print(json.dumps([settings.CONSOLE_TOKEN_KEYS, said]))"
    )
    # The builder's environment still holds the key ring here (the embedded
    # default, as the tests run it): the builder does not load it all the same.
    env = {**child_process_env(), "WORKER_ROLE": "builder"}
    assert env["CONSOLE_TOKEN_KEYS"]
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    keys, said = json.loads(result.stdout.strip().splitlines()[-1])
    assert keys == []
    assert said.startswith("This worker is a builder (WORKER_ROLE=builder): it runs package code and holds no token")
    assert credential_reveal(credential) == "pypi-" + "s" * 40  # here, with the ring, it decrypts


def test_in_production_a_builder_given_the_key_ring_refuses_to_start(tmp_path):
    env = {**PRODUCTION, **production_secrets(), "WORKER_ROLE": "builder", "AUDIT_CHECKPOINT_DIR": str(tmp_path)}
    refused = run_manage(env, "check")
    assert refused.returncode != 0
    assert "CONSOLE_TOKEN_KEYS is set for a builder (WORKER_ROLE=builder)" in refused.stderr

    without = {k: v for k, v in env.items() if k != "CONSOLE_TOKEN_KEYS"}
    assert run_manage(without, "check").returncode == 0, run_manage(without, "check").stderr


def test_a_job_of_another_role_is_left_queued_for_its_own_workers(transactional_db, settings, project):
    settings.WORKER_ROLE = "publisher"
    job = Job.objects.create(kind=Job.Kind.BUILD, release=project.releases.create(version="1.0.0", ref="v1.0.0"))

    job_run(job.pk, task_id="misrouted")

    job.refresh_from_db()
    assert job.state == Job.State.QUEUED and job.attempts == 0
