"""The database refuses to change or remove audit events.

PostgreSQL: row triggers refuse every UPDATE and DELETE of an audit event,
and let the chain head move only forward, to an event that exists with that
hash; statement triggers refuse TRUNCATE of both tables. SQLite: the same
with RAISE(ABORT) (it has no TRUNCATE; DELETE without WHERE fires the
delete trigger).

Two things pass, on purpose:

* setting ``actor_id`` to NULL and nothing else: Django does that when a
  person is deleted (``on_delete=SET_NULL``); the event keeps their name in
  ``actor_name``, which its hash covers.
* TRUNCATE by a superuser whose session set
  ``release_console.audit_truncate = 'allowed'``: the test runner empties
  every table between tests that way. A superuser can switch any trigger
  off anyway (``session_replication_role``), so this gives no one anything
  they did not have; it keeps ``manage.py flush`` from emptying the audit
  trail by accident, and the console's own role, if it is not a superuser,
  cannot truncate at all.

Dropping a trigger takes the table's owner or a superuser; audit_verify
names a trigger that is missing or disabled.
"""

from django.db import migrations

POSTGRESQL_INSTALL = [
    """
    CREATE OR REPLACE FUNCTION releases_audit_truncate_allowed() RETURNS boolean
    LANGUAGE sql STABLE AS $$
        SELECT coalesce(current_setting('release_console.audit_truncate', true), '') = 'allowed'
           AND coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION releases_auditevent_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF NEW.actor_id IS NULL AND to_jsonb(NEW) - 'actor_id' = to_jsonb(OLD) - 'actor_id' THEN
                RETURN NEW;
            END IF;
        ELSIF TG_OP = 'TRUNCATE' THEN
            IF releases_audit_truncate_allowed() THEN
                RETURN NULL;
            END IF;
        END IF;
        RAISE EXCEPTION 'audit events are append-only: % of % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The audit trail keeps every event as it was written; see docs/audit.md.';
    END;
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION releases_auditchainhead_forward_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            IF NEW.id = OLD.id AND NEW.last_event_id > OLD.last_event_id AND EXISTS (
                SELECT 1 FROM releases_auditevent WHERE id = NEW.last_event_id AND hash = NEW.last_hash
            ) THEN
                RETURN NEW;
            END IF;
        ELSIF TG_OP = 'TRUNCATE' THEN
            IF releases_audit_truncate_allowed() THEN
                RETURN NULL;
            END IF;
        END IF;
        RAISE EXCEPTION 'the audit chain head only moves forward, to the event just appended: % of % refused',
                TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'The audit trail keeps every event as it was written; see docs/audit.md.';
    END;
    $$
    """,
    """
    CREATE TRIGGER releases_auditevent_append_only BEFORE UPDATE OR DELETE ON releases_auditevent
    FOR EACH ROW EXECUTE FUNCTION releases_auditevent_refuse_change()
    """,
    """
    CREATE TRIGGER releases_auditevent_no_truncate BEFORE TRUNCATE ON releases_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION releases_auditevent_refuse_change()
    """,
    """
    CREATE TRIGGER releases_auditchainhead_forward_only BEFORE UPDATE OR DELETE ON releases_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION releases_auditchainhead_forward_only()
    """,
    """
    CREATE TRIGGER releases_auditchainhead_no_truncate BEFORE TRUNCATE ON releases_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION releases_auditchainhead_forward_only()
    """,
]

POSTGRESQL_REMOVE = [
    "DROP TRIGGER IF EXISTS releases_auditevent_append_only ON releases_auditevent",
    "DROP TRIGGER IF EXISTS releases_auditevent_no_truncate ON releases_auditevent",
    "DROP TRIGGER IF EXISTS releases_auditchainhead_forward_only ON releases_auditchainhead",
    "DROP TRIGGER IF EXISTS releases_auditchainhead_no_truncate ON releases_auditchainhead",
    "DROP FUNCTION IF EXISTS releases_auditevent_refuse_change()",
    "DROP FUNCTION IF EXISTS releases_auditchainhead_forward_only()",
    "DROP FUNCTION IF EXISTS releases_audit_truncate_allowed()",
]

# Every column but actor_id must stay as it was. A later migration that
# adds a column to the audit table must recreate this trigger with it (and
# one that makes SQLite rebuild the table must install all four again).
_UNCHANGED = " AND ".join(
    f"NEW.{column} IS OLD.{column}"
    for column in (
        "id", "actor_name", "action", "object_type", "object_id", "release_id", "data",
        "created_at", "previous_hash", "hash", "seal", "seal_key_id",
    )
)

SQLITE_INSTALL = [
    f"""
    CREATE TRIGGER releases_auditevent_no_update BEFORE UPDATE ON releases_auditevent
    WHEN NOT (NEW.actor_id IS NULL AND {_UNCHANGED})
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: UPDATE of releases_auditevent refused'); END
    """,
    """
    CREATE TRIGGER releases_auditevent_no_delete BEFORE DELETE ON releases_auditevent
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: DELETE of releases_auditevent refused'); END
    """,
    """
    CREATE TRIGGER releases_auditchainhead_forward_only BEFORE UPDATE ON releases_auditchainhead
    WHEN NOT (NEW.id IS OLD.id AND NEW.last_event_id > OLD.last_event_id AND EXISTS (
        SELECT 1 FROM releases_auditevent WHERE id = NEW.last_event_id AND hash = NEW.last_hash
    ))
    BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward, to the event just appended: UPDATE of releases_auditchainhead refused'); END
    """,
    """
    CREATE TRIGGER releases_auditchainhead_no_delete BEFORE DELETE ON releases_auditchainhead
    BEGIN SELECT RAISE(ABORT, 'the audit chain head only moves forward: DELETE of releases_auditchainhead refused'); END
    """,
]

SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS releases_auditevent_no_update",
    "DROP TRIGGER IF EXISTS releases_auditevent_no_delete",
    "DROP TRIGGER IF EXISTS releases_auditchainhead_forward_only",
    "DROP TRIGGER IF EXISTS releases_auditchainhead_no_delete",
]


def _run(schema_editor, statements):
    for statement in statements.get(schema_editor.connection.vendor, []):
        # No parameters: the SQL is sent as it is (its % are PL/pgSQL's).
        schema_editor.execute(statement, None)


def install(apps, schema_editor):
    _run(schema_editor, {"postgresql": POSTGRESQL_INSTALL, "sqlite": SQLITE_INSTALL})


def remove(apps, schema_editor):
    _run(schema_editor, {"postgresql": POSTGRESQL_REMOVE, "sqlite": SQLITE_REMOVE})


class Migration(migrations.Migration):

    dependencies = [
        ("releases", "0011_audit_event_seal"),
    ]

    operations = [
        migrations.RunPython(install, remove),
    ]
