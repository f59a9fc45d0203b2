"""Signed checkpoints of the audit chain: where they go, when, and when not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from releases.models import Environment
from releases.services.audit_checkpoints import CHECKPOINT_FILE, checkpoint_parse, signature_problem, trusted_keys
from releases.services.audit_witnesses import AuditChainBroken, audit_checkpoint_write
from releases.services.projects import environment_update
from tests.conftest import wait_for
from tests.support.audit import make_history
from tests.support.chaos import BeatProcess
from tests.support.standins import JsonServer
from tests.support.worker import WorkerProcess, child_process_env


class Witness:
    """An HTTP witness on loopback that keeps what it is sent, or refuses with ``status``."""

    def __init__(self) -> None:
        self.status = 201
        self.server = JsonServer(self.route).start()
        self.url = self.server.url + "/checkpoints"

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        return self.status, {"kept": self.status < 300}

    @property
    def received(self) -> list[Any]:
        return [body for method, path, body in self.server.requests if (method, path) == ("POST", "/checkpoints")]


@pytest.fixture
def witness() -> Iterator[Witness]:
    witness = Witness()
    yield witness
    witness.server.stop()


@pytest.fixture
def folder(tmp_path: Path, settings) -> Path:
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


@pytest.mark.django_db
def test_one_signed_line_goes_to_the_folder_the_mail_and_the_witness(folder, witness, settings, mailoutbox, capsys):
    settings.AUDIT_CHECKPOINT_EMAILS = ["audit@example.org", "auditor@example.net"]
    settings.AUDIT_CHECKPOINT_WITNESS_URL = witness.url
    settings.AUDIT_CHECKPOINT_WITNESS_TOKEN = "witness-token-0123456789"
    events = make_history(4)

    call_command("audit_checkpoint")

    out = capsys.readouterr().out
    assert f"checkpoint of event #{events[-1].pk} (4 events, hash {events[-1].hash}) signed by key" in out
    assert f"written to {folder / CHECKPOINT_FILE}" in out
    assert "written to mail to audit@example.org, auditor@example.net" in out
    assert f"written to the witness at {witness.url}" in out
    [line] = (folder / CHECKPOINT_FILE).read_text().splitlines()
    checkpoint = checkpoint_parse(line, "folder")
    assert (checkpoint.event_id, checkpoint.hash, checkpoint.count) == (events[-1].pk, events[-1].hash, 4)
    assert signature_problem(checkpoint, trusted_keys()) is None
    [mail] = mailoutbox
    assert mail.to == ["audit@example.org", "auditor@example.net"]
    assert mail.subject == f"[release console] audit checkpoint: event #{events[-1].pk}"
    assert line in mail.body.splitlines()
    assert witness.received == [json.loads(line)]
    assert witness.server.headers[0]["Authorization"] == "Bearer witness-token-0123456789"
    assert "witness-token" not in out


@pytest.mark.django_db
def test_a_witness_that_refuses_fails_the_command_and_the_folder_still_gets_the_checkpoint(folder, witness, settings):
    settings.AUDIT_CHECKPOINT_WITNESS_URL = witness.url
    witness.status = 403
    make_history(2)

    with pytest.raises(CommandError, match=f"not written to the witness: the audit witness at {witness.url} refused"):
        call_command("audit_checkpoint")
    assert len((folder / CHECKPOINT_FILE).read_text().splitlines()) == 1


@pytest.mark.django_db
def test_no_checkpoint_is_signed_for_a_broken_chain_and_the_recipients_are_told(folder, settings, mailoutbox):
    settings.AUDIT_CHECKPOINT_EMAILS = ["audit@example.org"]
    make_history(3)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE releases_auditevent SET actor_name = 'mallory' WHERE id = 2")

    with pytest.raises(AuditChainBroken, match="audit chain broken at event #2: event #2 does not match its seal"):
        audit_checkpoint_write()
    assert not (folder / CHECKPOINT_FILE).exists()
    [alert] = mailoutbox
    assert alert.subject == "[release console] audit chain check FAILED"
    assert "- audit chain broken at event #2: event #2 does not match its seal" in alert.body


@pytest.mark.django_db
def test_the_schedule_writes_a_checkpoint_only_once_the_chain_has_grown(folder):
    make_history(2)
    assert audit_checkpoint_write().checkpoint is not None
    unchanged = audit_checkpoint_write()
    assert unchanged.checkpoint is None
    assert unchanged.skipped.startswith("the chain has not grown since the checkpoint of ")
    environment_update(Environment.objects.get(name="staging"), request_ttl_hours=12, actor=None)
    grown = audit_checkpoint_write()
    assert grown.checkpoint is not None
    assert grown.checkpoint.event_id == 3
    assert len((folder / CHECKPOINT_FILE).read_text().splitlines()) == 2


@pytest.mark.django_db
def test_nothing_is_signed_before_the_first_event(folder):
    assert audit_checkpoint_write().skipped == "no audit events yet: nothing to vouch for"
    assert not folder.exists()


def test_beat_has_a_worker_write_checkpoints_on_its_schedule(transactional_db, tmp_path):
    events = make_history(3)
    folder = tmp_path / "checkpoints"
    env = {
        **child_process_env(),
        "CELERY_QUEUE": f"audit-checkpoints-{tmp_path.name}",
        "AUDIT_CHECKPOINT_DIR": str(folder),
        "AUDIT_CHECKPOINT_INTERVAL": "1",
    }
    worker = WorkerProcess(tmp_path, "audit-worker", env=env)
    beat = BeatProcess(tmp_path, env)
    worker.start()
    beat.start()
    try:
        wait_for(lambda: (folder / CHECKPOINT_FILE).exists(), timeout=60)
    finally:
        beat.stop()
        worker.stop()
    first = checkpoint_parse((folder / CHECKPOINT_FILE).read_text().splitlines()[0], "folder")
    assert (first.event_id, first.hash, first.count) == (events[-1].pk, events[-1].hash, 3)
    assert "releases.tasks.audit_checkpoint" in worker.log_text()
