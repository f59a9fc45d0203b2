"""Insiders against the audit trail, the way they would go at it.

Each attack runs raw SQL through a connection of its own to the real
PostgreSQL database (as psql would: the database superuser, autocommit),
with the console's code at hand to recompute hashes, but without the keys
kept outside the database: the audit chain key and the checkpoint signing
key. Each is judged by ``manage.py audit_verify`` run as an operator runs
it, in a process of its own, by its output and its exit status.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from releases.models import AuditEvent, Environment
from releases.services.audit import canonical_json, chain_hash, chain_keys, event_payload
from releases.services.audit_checkpoints import CHECKPOINT_FILE
from releases.services.audit_witnesses import audit_checkpoint_write
from releases.services.projects import environment_update, project_create
from releases.services.roles import role_assign
from tests.support.audit import insider_connection, make_history, manage, new_signing_key

pytestmark = pytest.mark.django_db(transaction=True)

Insider = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def insider() -> Iterator[Insider]:
    conn = insider_connection()
    yield conn
    conn.close()


@pytest.fixture
def checkpoints(tmp_path: Path, settings) -> Path:
    """The checkpoint folder, outside the database, for this test alone."""
    folder = tmp_path / "checkpoints"
    settings.AUDIT_CHECKPOINT_DIR = str(folder)
    return folder


@pytest.fixture
def guard_restored(insider: Insider) -> Iterator[None]:
    """Put back, after the test, any audit trigger the test's insider dropped."""
    definitions = insider.execute(
        "SELECT tgname, tgrelid::regclass::text, pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid IN ('releases_auditevent'::regclass, 'releases_auditchainhead'::regclass) AND NOT tgisinternal"
    ).fetchall()
    assert len(definitions) == 4
    yield
    with insider_connection() as conn:
        for name, table, definition in definitions:
            conn.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            conn.execute(str(definition))


def staging() -> Environment:
    return Environment.objects.get(name="staging")


def verify(checkpoint_dir: Path | str = "", *args: str, **env: str) -> tuple[int, str, str]:
    result = manage("audit_verify", *args, AUDIT_CHECKPOINT_DIR=str(checkpoint_dir), **env)
    return result.returncode, result.stdout, result.stderr


def without_triggers(insider: Insider) -> None:
    """A superuser's way past every trigger, for this session, leaving no trace in the schema."""
    insider.execute("SET session_replication_role = replica")


def rewrite_plain_hashes(insider: Insider, from_id: int) -> None:
    """Recompute every hash from ``from_id`` on with the console's own (unkeyed) rule, and the head."""
    previous = AuditEvent.objects.filter(pk__lt=from_id).order_by("-id").values_list("hash", flat=True).first()
    previous = previous or "0" * 64
    last_id = 0
    for event in AuditEvent.objects.filter(pk__gte=from_id).order_by("id"):
        new_hash = chain_hash(previous, event_payload(event))
        insider.execute(
            "UPDATE releases_auditevent SET previous_hash = %s, hash = %s WHERE id = %s", [previous, new_hash, event.pk]
        )
        previous, last_id = new_hash, event.pk
    insider.execute("UPDATE releases_auditchainhead SET last_event_id = %s, last_hash = %s", [last_id, previous])


def test_the_database_refuses_to_change_or_remove_an_event_or_move_the_head_back(insider):
    make_history(5)
    refused = {
        "UPDATE releases_auditevent SET data = '{\"forged\": true}' WHERE id = 3": "audit events are append-only: UPDATE",
        "UPDATE releases_auditevent SET actor_name = 'mallory'": "audit events are append-only: UPDATE",
        "DELETE FROM releases_auditevent WHERE id = 5": "audit events are append-only: DELETE",
        "TRUNCATE releases_auditevent CASCADE": "audit events are append-only: TRUNCATE",
        "DELETE FROM releases_auditchainhead": "the audit chain head only moves forward, to the event just appended: DELETE",
        "TRUNCATE releases_auditchainhead": "the audit chain head only moves forward, to the event just appended: TRUNCATE",
        # Back to #3, as if #4 and #5 had never been written.
        "UPDATE releases_auditchainhead SET last_event_id = 3, "
        "last_hash = (SELECT hash FROM releases_auditevent WHERE id = 3)": (
            "the audit chain head only moves forward, to the event just appended: UPDATE"
        ),
    }
    for statement, message in refused.items():
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
            insider.execute(statement)

    # The append path goes on: INSERT, and the head moving to the new event.
    environment_update(staging(), request_ttl_hours=99, actor=None)
    status, out, _ = verify()
    assert status == 0
    assert f"audit chain intact: 6 events, last #6 with hash {AuditEvent.objects.get(pk=6).hash}" in out


def test_the_console_s_own_role_cannot_change_the_trail_even_when_it_asks_to_truncate(insider):
    """A role with every privilege on the tables, but neither their owner nor a superuser."""
    make_history(3)
    role = "console_app_audit_test"
    insider.execute(f"DROP ROLE IF EXISTS {role}")
    insider.execute(f"CREATE ROLE {role} LOGIN")
    try:
        insider.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}")
        with insider_connection(role) as app:
            app.execute("SET release_console.audit_truncate = 'allowed'")
            for statement in (
                "TRUNCATE releases_auditevent CASCADE",
                "DELETE FROM releases_auditevent",
                "UPDATE releases_auditevent SET data = '{}'",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="audit events are append-only"):
                    app.execute(statement)
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="must be owner"):
                app.execute("DROP TRIGGER releases_auditevent_append_only ON releases_auditevent")
            # It reads, and appends.
            assert app.execute("SELECT count(*) FROM releases_auditevent").fetchone() == (3,)
    finally:
        insider.execute(f"DROP OWNED BY {role}")
        insider.execute(f"DROP ROLE {role}")


def test_a_change_made_after_dropping_the_trigger_is_named_by_its_seal(insider, guard_restored):
    make_history(5)
    insider.execute("DROP TRIGGER releases_auditevent_append_only ON releases_auditevent")
    insider.execute(
        'UPDATE releases_auditevent SET data = \'{"request_ttl_hours": {"before": 2, "after": 720}}\' WHERE id = 3'
    )

    status, _, err = verify()
    assert status == 1
    assert "audit chain broken at event #3: event #3 does not match its seal, the keyed hash under key" in err
    assert "audit guard missing: trigger releases_auditevent_append_only on releases_auditevent" in err


def test_a_whole_chain_rewritten_with_recomputed_sha256_hashes_is_named(insider):
    make_history(8)
    without_triggers(insider)
    insider.execute("UPDATE releases_auditevent SET actor_name = 'someone-else' WHERE id = 3")
    rewrite_plain_hashes(insider, from_id=3)

    # Every link and every plain hash agrees: this is what the unkeyed chain called intact.
    previous = "0" * 64
    for event in AuditEvent.objects.order_by("id"):
        assert (event.previous_hash, event.hash) == (previous, chain_hash(previous, event_payload(event)))
        previous = event.hash
    status, _, err = verify()
    assert status == 1
    assert "audit chain broken at event #3: event #3 does not match its seal" in err
    assert "its content was changed, or the event forged, by someone without the audit chain key" in err


def test_events_deleted_from_the_end_with_the_head_fixed_are_named_through_the_checkpoint(insider, checkpoints):
    events = make_history(10)
    assert manage("audit_checkpoint", AUDIT_CHECKPOINT_DIR=str(checkpoints)).returncode == 0
    without_triggers(insider)
    insider.execute("DELETE FROM releases_auditevent WHERE id > 8")
    insider.execute("UPDATE releases_auditchainhead SET last_event_id = 8, last_hash = %s", [events[7].hash])

    status, _, err = verify(checkpoints)
    assert status == 1
    assert (
        f"audit chain broken at event #9: the checkpoint of {_only_checkpoint(checkpoints)['created_at']} "
        f"({checkpoints / CHECKPOINT_FILE} line 1) names event #10 with hash {events[9].hash[:12]}… (10 events), "
        "but the chain ends at #8: events #9 to #10 were deleted"
    ) in err
    # Without a checkpoint nothing could tell: the chain that is left is whole.
    status, out, _ = verify("")
    assert status == 0
    assert "audit chain intact: 8 events" in out
    assert "events deleted from the end of the chain would not show" in out


def _only_checkpoint(folder: Path) -> dict[str, object]:
    lines = (folder / CHECKPOINT_FILE).read_text().splitlines()
    assert len(lines) == 1
    return dict(json.loads(lines[0]))


def test_a_forged_event_inserted_in_the_middle_is_named(insider):
    events = make_history(8)
    without_triggers(insider)
    # Make room at #4, slip an approval in, and relink everything after it.
    insider.execute("UPDATE releases_auditevent SET id = -id WHERE id >= 4")
    insider.execute("UPDATE releases_auditevent SET id = -id + 1 WHERE id < 0")
    insider.execute(
        "INSERT INTO releases_auditevent (id, actor_name, action, object_type, object_id, data, created_at, "
        "previous_hash, hash, seal, seal_key_id) VALUES (4, 'mallory', 'approval.given', 'deployment', '1', "
        '\'{"environment": "pypi"}\', %s, %s, %s, %s, %s)',
        [
            events[2].created_at + timedelta(seconds=1),
            events[2].hash,
            "f" * 64,
            events[3].seal,  # a real seal, lifted from the event that was #4
            events[3].seal_key_id,
        ],
    )
    rewrite_plain_hashes(insider, from_id=4)

    status, _, err = verify()
    assert status == 1
    assert "audit chain broken at event #4: event #4 does not match its seal" in err


def test_a_forged_checkpoint_is_named_and_the_kept_copy_still_shows_the_deletion(insider, checkpoints, tmp_path):
    events = make_history(10)
    audit_checkpoint_write()
    kept = tmp_path / "kept-from-mail"
    shutil.copytree(checkpoints, kept)
    without_triggers(insider)
    insider.execute("DELETE FROM releases_auditevent WHERE id > 8")
    insider.execute("UPDATE releases_auditchainhead SET last_event_id = 8, last_hash = %s", [events[7].hash])

    # The insider rewrites the checkpoint file too: two checkpoints of the shorter chain, one
    # claiming the console's public key, one with a key of their own.
    real = _only_checkpoint(checkpoints)
    own_key = Ed25519PrivateKey.generate()
    forged = []
    for key_text in (str(real["key"]), base64.b64encode(own_key.public_key().public_bytes_raw()).decode()):
        body = {**real, "event_id": 8, "hash": events[7].hash, "count": 8, "key": key_text}
        del body["signature"]
        signature = base64.b64encode(own_key.sign(canonical_json(body).encode())).decode()
        forged.append(canonical_json({**body, "signature": signature}))
    (checkpoints / CHECKPOINT_FILE).write_text("\n".join(forged) + "\n")

    status, out, err = verify(checkpoints)
    assert status == 1
    assert "audit chain intact: 8 events" in out  # the chain left is whole, and no checkpoint vouches for it
    assert "no signed checkpoint to check against" in out
    file = checkpoints / CHECKPOINT_FILE
    assert (
        f"audit checkpoint forged: {file} line 1 (naming event #8) has a signature that does not verify "
        "(it was forged or altered)"
    ) in err
    assert (
        f"audit checkpoint forged: {file} line 2 (naming event #8) is signed by a key the console does not trust"
    ) in err

    status, _, err = verify(checkpoints, "--checkpoints", str(kept))
    assert status == 1
    assert "audit chain broken at event #9:" in err
    assert "names event #10" in err
    assert "events #9 to #10 were deleted" in err


def test_a_rewrite_by_someone_holding_the_chain_key_is_named_through_the_checkpoint(insider, checkpoints):
    """The seals are only as secret as AUDIT_CHAIN_KEYS; a checkpoint signed before is not."""
    make_history(8)
    audit_checkpoint_write()
    without_triggers(insider)
    insider.execute("UPDATE releases_auditevent SET actor_name = 'someone-else' WHERE id = 3")
    key = chain_keys()[0]
    previous = AuditEvent.objects.get(pk=2).hash
    for event in AuditEvent.objects.filter(pk__gte=3).order_by("id"):
        new_hash = chain_hash(previous, event_payload(event))
        insider.execute(
            "UPDATE releases_auditevent SET previous_hash = %s, hash = %s, seal = %s WHERE id = %s",
            [previous, new_hash, key.seal(new_hash), event.pk],
        )
        previous = new_hash
    insider.execute("UPDATE releases_auditchainhead SET last_hash = %s", [previous])

    status, _, err = verify(checkpoints)
    assert status == 1
    assert "audit chain broken at event #8: the checkpoint of" in err
    assert (
        "names event #8 with hash" in err
        and "as event 8 of the chain, but the chain has hash" in err
        and "(the chain was rewritten at or before #8)" in err
    )


def test_the_chain_verifies_intact_after_normal_use(checkpoints, django_user_model):
    alice = django_user_model.objects.create_user("alice", password="x" * 20)
    bob = django_user_model.objects.create_user("bob", password="x" * 20)
    role_assign(alice, "admin", actor=None)
    project_create(name="greeting-kit", source="/srv/src/greeting-kit", actor=alice)
    make_history(3)
    role_assign(bob, "approver", actor=alice)
    audit_checkpoint_write()
    environment_update(staging(), request_ttl_hours=48, actor=alice)
    # A person who acted is deleted: their events keep their name (the one change the database allows).
    alice.delete()
    assert AuditEvent.objects.filter(actor_name="alice", actor__isnull=True).count() == 3

    last = AuditEvent.objects.order_by("-id").first()
    assert last is not None
    status, out, err = verify(checkpoints)
    assert (status, err) == (0, "")
    assert f"audit chain intact: {last.pk} events, last #{last.pk} with hash {last.hash}" in out
    assert f"  {last.pk} sealed with key {chain_keys()[0].key_id}" in out
    assert "checked against 1 signed checkpoint;" in out


def test_the_chain_and_its_checkpoints_verify_after_both_keys_are_rotated(checkpoints, settings):
    old_chain_key = settings.AUDIT_CHAIN_KEYS[0]
    old_public = manage("audit_checkpoint", "--public-key").stdout.strip()
    make_history(4)
    audit_checkpoint_write()

    new_chain_key = "rotated-" + "k" * 40
    new_signing, _ = new_signing_key()
    rotated = {
        "AUDIT_CHAIN_KEYS": f"{new_chain_key},{old_chain_key}",
        "AUDIT_CHECKPOINT_SIGNING_KEY": new_signing,
        "AUDIT_CHECKPOINT_PUBLIC_KEYS": old_public,
    }
    settings.AUDIT_CHAIN_KEYS = [new_chain_key, old_chain_key]
    settings.AUDIT_CHECKPOINT_SIGNING_KEY = new_signing
    settings.AUDIT_CHECKPOINT_PUBLIC_KEYS = [old_public]
    for hours in (30, 31):
        environment_update(staging(), request_ttl_hours=hours, actor=None)
    audit_checkpoint_write()
    old_id, new_id = (key.key_id for key in reversed(chain_keys()))

    status, out, err = verify(checkpoints, **rotated)
    assert (status, err) == (0, "")
    assert "audit chain intact: 6 events, last #6" in out
    assert f"  4 sealed with key {old_id}\n  2 sealed with key {new_id}" in out
    assert "checked against 2 signed checkpoints; the newest names #6" in out

    # Taking the old key out of the ring, or forgetting the old public key, is named, not ignored.
    status, _, err = verify(checkpoints, **{**rotated, "AUDIT_CHAIN_KEYS": new_chain_key})
    assert status == 1
    assert (
        f"audit chain broken at event #1: event #1 is sealed with key {old_id}, which AUDIT_CHAIN_KEYS does not hold"
        in err
    )
    status, _, err = verify(checkpoints, **{**rotated, "AUDIT_CHECKPOINT_PUBLIC_KEYS": ""})
    assert status == 1
    assert (
        f"audit checkpoint forged: {checkpoints / CHECKPOINT_FILE} line 1 (naming event #4) is signed by a key" in err
    )
