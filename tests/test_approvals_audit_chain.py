"""The audit chain: tamper detection, parallel writers, export verified off the host."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from releases.models import AuditEvent, Environment
from releases.services.audit import chain_hash, event_payload
from releases.services.audit_checkpoints import CHECKPOINT_FILE, public_key_text, signing_key
from releases.services.audit_witnesses import audit_checkpoint_write
from releases.services.projects import environment_create, environment_update

DOCS = Path(__file__).resolve().parent.parent / "docs" / "audit.md"


def make_events(count: int) -> list[AuditEvent]:
    environment = environment_create(
        name="staging", upload_url="http://127.0.0.1:1/up/", index_url="http://127.0.0.1:1/simple/", actor=None
    )
    for hours in range(2, count + 1):
        environment_update(environment, request_ttl_hours=hours, actor=None)
    return list(AuditEvent.objects.order_by("id"))


def verify_error() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify")
    return str(failure.value)


def sql(statement: str, params: list[object]) -> None:
    """Raw SQL as a superuser who switched the audit triggers off for the test's
    transaction: what the chain itself catches, once the database let it through
    (tests/test_audit_tamper.py attacks the triggers)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(statement, params)


@pytest.mark.django_db
def test_audit_verify_passes_on_an_untouched_chain(capsys):
    events = make_events(5)
    call_command("audit_verify")
    out = capsys.readouterr().out
    assert f"audit chain intact: 5 events, last #{events[-1].pk} with hash {events[-1].hash}" in out


@pytest.mark.django_db
def test_environment_change_is_audited_with_before_and_after():
    environment = environment_create(
        name="pypi", upload_url="http://127.0.0.1:1/up/", index_url="http://127.0.0.1:1/simple/", actor=None
    )
    environment_update(environment, required_approvals=2, allowed_ref_pattern="v*", actor=None)
    event = AuditEvent.objects.get(action="environment.changed")
    assert event.data["required_approvals"] == {"before": 0, "after": 2}
    assert event.data["allowed_ref_pattern"] == {"before": "", "after": "v*"}


@pytest.mark.django_db
def test_a_row_modified_in_the_database_is_named():
    events = make_events(5)
    sql("UPDATE releases_auditevent SET data = %s WHERE id = %s", ['{"name": "forged"}', events[2].pk])
    assert f"broken at event #{events[2].pk}" in verify_error()


@pytest.mark.django_db
def test_a_changed_actor_is_named():
    events = make_events(4)
    sql("UPDATE releases_auditevent SET actor_name = 'mallory' WHERE id = %s", [events[1].pk])
    error = verify_error()
    assert f"broken at event #{events[1].pk}" in error
    assert "content was changed" in error


@pytest.mark.django_db
def test_a_row_deleted_from_the_middle_is_named():
    events = make_events(5)
    sql("DELETE FROM releases_auditevent WHERE id = %s", [events[2].pk])
    error = verify_error()
    # The link that breaks is the event after the deleted one.
    assert f"broken at event #{events[3].pk}" in error
    assert "deleted, inserted or reordered" in error


@pytest.mark.django_db
def test_a_row_deleted_from_the_end_is_named():
    events = make_events(5)
    sql("DELETE FROM releases_auditevent WHERE id = %s", [events[-1].pk])
    error = verify_error()
    assert f"broken at event #{events[-1].pk}" in error
    assert f"the chain ends at #{events[-2].pk}" in error


@pytest.mark.django_db
def test_two_rows_swapped_are_named():
    events = make_events(5)
    first, second = events[1], events[2]
    # Swap everything but the ids, as if the order of what happened were changed.
    # hash is unique: park the first row's hash while the second takes it.
    sql("UPDATE releases_auditevent SET hash = %s WHERE id = %s", ["0" * 63 + "1", first.pk])
    for target, source in ((second, first), (first, second)):
        sql(
            "UPDATE releases_auditevent SET action = %s, data = %s, created_at = %s, previous_hash = %s, hash = %s "
            "WHERE id = %s",
            [source.action, json.dumps(source.data), source.created_at, source.previous_hash, source.hash, target.pk],
        )
    assert f"broken at event #{first.pk}" in verify_error()


@pytest.mark.django_db
def test_ids_swapped_are_named():
    events = make_events(5)
    a, b = events[1].pk, events[2].pk
    sql("UPDATE releases_auditevent SET id = -1 WHERE id = %s", [a])
    sql("UPDATE releases_auditevent SET id = %s WHERE id = %s", [a, b])
    sql("UPDATE releases_auditevent SET id = %s WHERE id = -1", [b])
    assert f"broken at event #{a}" in verify_error()


@pytest.mark.django_db
def test_a_row_inserted_with_raw_sql_is_named():
    events = make_events(4)
    last = events[-1]
    sql(
        "INSERT INTO releases_auditevent (id, actor_name, action, object_type, object_id, data, created_at, "
        "previous_hash, hash, seal, seal_key_id) "
        "VALUES (%s, 'mallory', 'approval.given', 'approval', '7', '{}', now(), %s, %s, %s, %s)",
        [last.pk + 1, last.hash, "f" * 64, last.seal, last.seal_key_id],
    )
    error = verify_error()
    assert f"broken at event #{last.pk + 1}" in error


@pytest.mark.django_db
def test_a_row_inserted_with_a_correctly_computed_hash_is_still_named():
    events = make_events(4)
    last = events[-1]
    forged = AuditEvent(
        id=last.pk + 1,
        actor_name="mallory",
        action="approval.given",
        object_type="approval",
        object_id="7",
        data={},
        created_at=last.created_at,
        previous_hash=last.hash,
    )
    forged.hash = chain_hash(last.hash, event_payload(forged))
    sql(
        "INSERT INTO releases_auditevent (id, actor_name, action, object_type, object_id, data, created_at, "
        "previous_hash, hash, seal, seal_key_id) "
        "VALUES (%s, 'mallory', 'approval.given', 'approval', '7', '{}', %s, %s, %s, '', '')",
        [forged.pk, forged.created_at, forged.previous_hash, forged.hash],
    )
    error = verify_error()
    assert f"broken at event #{last.pk + 1}" in error
    assert "added outside the console" in error


@pytest.mark.django_db(transaction=True)
def test_parallel_writers_never_fork_the_chain():
    """Eight threads, each on its own PostgreSQL connection, change environments at once."""
    writers, changes = 8, 12
    environments = [
        environment_create(
            name=f"env-{n}", upload_url="http://127.0.0.1:1/up/", index_url="http://127.0.0.1:1/simple/", actor=None
        )
        for n in range(writers)
    ]
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(environment: Environment) -> None:
        try:
            start.wait()
            for hours in range(2, changes + 2):
                with transaction.atomic():
                    environment_update(environment, request_ttl_hours=hours, actor=None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(env,)) for env in environments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    events = list(AuditEvent.objects.order_by("id"))
    assert len(events) == writers + writers * changes
    assert [e.pk for e in events] == list(range(1, len(events) + 1))
    # A fork would show as two events naming the same predecessor.
    assert len({e.previous_hash for e in events}) == len(events)
    call_command("audit_verify")


def documented_verifier(tmp_path: Path) -> Path:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1, "docs/audit.md holds one Python snippet: the off-host verifier"
    script = tmp_path / "verify_audit.py"
    script.write_text(blocks[0])
    return script


@pytest.mark.django_db
def test_an_export_verifies_off_the_host_with_the_documented_snippet_and_the_public_key(tmp_path, settings):
    settings.AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    events = make_events(6)
    audit_checkpoint_write()
    checkpoints = tmp_path / "checkpoints" / CHECKPOINT_FILE
    public_key = public_key_text(signing_key().public_key())
    export = tmp_path / "audit.jsonl"
    call_command("audit_export", "--output", str(export))
    script = documented_verifier(tmp_path)

    def off_the_host(export: Path, *checkpoint_files: Path) -> subprocess.CompletedProcess[str]:
        # -I: isolated; Python, the cryptography package, and nothing of the console.
        command = [sys.executable, "-I", str(script), str(export), public_key, *map(str, checkpoint_files)]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)

    ok = off_the_host(export, checkpoints)
    assert ok.returncode == 0, ok.stderr
    assert f"6 events verified against 1 checkpoints; last hash {events[-1].hash}" in ok.stdout

    lines = export.read_text().splitlines()
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join([*lines[:3], lines[3].replace('"actor":"system"', '"actor":"mallory"'), *lines[4:]]))
    bad = off_the_host(tampered, checkpoints)
    assert bad.returncode != 0
    assert f"line 4 (event #{events[3].pk}): content does not match its hash" in bad.stderr

    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(lines[:-1]) + "\n")
    short = off_the_host(truncated, checkpoints)
    assert short.returncode != 0
    assert f"names event #{events[-1].pk} with hash {events[-1].hash}, which the export does not hold" in short.stderr

    forged = tmp_path / "forged.jsonl"
    forged.write_text(checkpoints.read_text().replace('"count":6', '"count":5'))
    unsigned = off_the_host(truncated, forged)
    assert unsigned.returncode != 0
    assert f"{forged} line 1: not signed by the public key given (forged or altered)" in unsigned.stderr
