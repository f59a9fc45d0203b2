"""Writing signed checkpoints of the audit chain to places outside the database.

Three kinds of place, any together (settings ``AUDIT_CHECKPOINT_*``): a
file of JSON lines, appended to and never rewritten; a mail; an HTTP
witness. Each gets the same signed line. A checkpoint is signed only for a
chain that verifies: the console never vouches for a rewritten history.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
from dataclasses import dataclass, field

from django.conf import settings
from django.core.mail import send_mail

from releases.clients.witness import witness_send
from releases.errors import StepFailed, TransientError
from releases.services.audit_checkpoints import (
    CHECKPOINT_FILE,
    Checkpoint,
    checkpoint_folder,
    checkpoint_sign,
)
from releases.services.audit_verification import AuditReport, audit_verify_report

logger = logging.getLogger(__name__)


class AuditChainBroken(Exception):
    """The chain does not verify, so no checkpoint is signed for it."""


@dataclass(frozen=True)
class CheckpointOutcome:
    checkpoint: Checkpoint | None
    # Where it went ("/srv/audit/audit-checkpoints.jsonl"), and where it failed, with why.
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Why none was written, when none was.
    skipped: str = ""


def _append_to_file(checkpoint: Checkpoint) -> str:
    folder = checkpoint_folder()
    assert folder is not None
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / CHECKPOINT_FILE
    # O_APPEND: one write of one whole line, after whatever is there, never over it.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, (checkpoint.line() + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return str(path)


def _mail(checkpoint: Checkpoint) -> str:
    send_mail(
        subject=f"[release console] audit checkpoint: event #{checkpoint.event_id}",
        message=(
            f"The audit chain of {checkpoint.console} verified, and its head was event #{checkpoint.event_id} "
            f"of {checkpoint.count}, with hash {checkpoint.hash}, at {checkpoint.created_at}.\n\n"
            "Keep this mail. The line below is the signed checkpoint: saved in a file, it lets "
            "`manage.py audit_verify --checkpoints FILE` (or the check in docs/audit.md) prove that the "
            "chain still holds this event, later.\n\n" + checkpoint.line() + "\n"
        ),
        from_email=None,
        recipient_list=settings.AUDIT_CHECKPOINT_EMAILS,
    )
    return "mail to " + ", ".join(settings.AUDIT_CHECKPOINT_EMAILS)


def _send_to_witness(checkpoint: Checkpoint) -> str:
    url = settings.AUDIT_CHECKPOINT_WITNESS_URL
    witness_send(url, json.loads(checkpoint.line()), token=settings.AUDIT_CHECKPOINT_WITNESS_TOKEN)
    return f"the witness at {url}"


def _deliver(checkpoint: Checkpoint) -> CheckpointOutcome:
    """Every configured place gets the checkpoint; one that fails does not stop the others."""
    places = [
        (bool(settings.AUDIT_CHECKPOINT_DIR), "the checkpoint folder", _append_to_file),
        (bool(settings.AUDIT_CHECKPOINT_EMAILS), "mail", _mail),
        (bool(settings.AUDIT_CHECKPOINT_WITNESS_URL), "the witness", _send_to_witness),
    ]
    delivered, failed = [], []
    for wanted, name, write in places:
        if not wanted:
            continue
        try:
            delivered.append(write(checkpoint))
        except (OSError, smtplib.SMTPException, StepFailed, TransientError) as exc:
            failed.append(f"{name}: {exc}")
            logger.error("audit checkpoint of event #%s not written to %s: %s", checkpoint.event_id, name, exc)
    return CheckpointOutcome(checkpoint, delivered, failed)


def _alert(report: AuditReport) -> None:
    """Tell the checkpoint's recipients that the chain broke: they are the ones outside."""
    lines = [f"audit chain broken at event #{report.broken.event_id}: {report.broken.problem}"] if report.broken else []
    lines += report.problems
    logger.error("audit chain check failed: %s", "; ".join(lines))
    if settings.AUDIT_CHECKPOINT_EMAILS:
        try:
            send_mail(
                subject="[release console] audit chain check FAILED",
                message="The scheduled audit check found:\n\n"
                + "\n".join(f"- {line}" for line in lines)
                + "\n\nSee docs/audit.md, 'When the check fails'.\n",
                from_email=None,
                recipient_list=settings.AUDIT_CHECKPOINT_EMAILS,
            )
        except (OSError, smtplib.SMTPException) as exc:
            logger.error("audit alert not mailed: %s", exc)


def _newest_in_folder(report: AuditReport) -> Checkpoint | None:
    folder = checkpoint_folder()
    if folder is None:
        return None
    mine = [c for c in report.checkpoints if c.source.startswith(str(folder / CHECKPOINT_FILE) + " ")]
    return max(mine, key=lambda c: c.event_id, default=None)


def audit_checkpoint_write(*, force: bool = False) -> CheckpointOutcome:
    """Verify the chain, then sign a checkpoint of its head and write it out.

    1. Verify the whole chain, against its keys and every readable
       checkpoint. If it is broken, sign nothing: alert, and raise
       AuditChainBroken. (Forged checkpoints or a missing guard are alerted
       on, but the chain itself verified, so its head is still signed.)
    2. Unless ``force``, skip when the checkpoint folder's newest checkpoint
       already names the head: the chain has not grown since.
    3. Sign the head the walk verified (not a newer one: that would be
       vouching for events nobody checked), and deliver it to every place.
    """
    report = audit_verify_report()
    if not report.ok:
        _alert(report)
    if report.broken is not None:
        raise AuditChainBroken(f"audit chain broken at event #{report.broken.event_id}: {report.broken.problem}")
    walk = report.walk
    if walk.count == 0:
        return CheckpointOutcome(None, skipped="no audit events yet: nothing to vouch for")
    newest = _newest_in_folder(report)
    if not force and newest is not None and newest.event_id == walk.last_id:
        return CheckpointOutcome(None, skipped=f"the chain has not grown since the checkpoint of {newest.created_at}")
    return _deliver(checkpoint_sign(walk.last_id, walk.last_hash, walk.count))
