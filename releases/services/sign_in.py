"""Failed sign-ins and second-factor attempts in the audit trail, without
letting a guessing run flood it; and what a successful sign-in clears.

django-axes counts failures and locks out (console/settings.py); this
module only records them. A failure for one username from one address is
audited at once when none was reported for that pair in the last
FAILURE_AUDIT_INTERVAL seconds; later ones are tallied and reported
together, with their count, by the next failure after the interval or by
``failure_reports_flush`` (beat, every minute), whichever comes first.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from releases.actors import Actor
from releases.models import AuditAction, FailureTally
from releases.services.audit import audit_record

logger = logging.getLogger(__name__)

SIGN_IN_FAILED = AuditAction.LOGIN_FAILED
SECOND_FACTOR_FAILED = AuditAction.SECOND_FACTOR_FAILED


def _interval() -> timedelta:
    return timedelta(seconds=settings.FAILURE_AUDIT_INTERVAL)


def failure_report(
    action: str, *, username: str, address: str, actor: Actor = None, data: dict[str, object] | None = None
) -> bool:
    """Count one failure of ``action`` for ``username`` from ``address``;
    return True when it was written to the audit trail now.

    1. Lock (or make) the pair's tally and add the failure to it.
    2. If the pair was last reported more than FAILURE_AUDIT_INTERVAL ago
       (or never), write one event with every failure tallied since, and
       start a new interval; otherwise leave it for the next report.
    """
    username = username[:150]
    address = address[:64]
    now = timezone.now()
    with transaction.atomic():
        tally, _ = FailureTally.objects.select_for_update().get_or_create(
            action=action, username=username, address=address
        )
        tally.unreported += 1
        tally.first_unreported_at = tally.first_unreported_at or now
        tally.last_failure_at = now
        due = tally.reported_at is None or now - tally.reported_at >= _interval()
        if due:
            _report(tally, now, actor=actor, data=data)
        tally.save()
    return due


def _report(tally: FailureTally, now: datetime, *, actor: Actor = None, data: dict[str, object] | None = None) -> None:
    """Write the tally's failures as one event and empty it (caller holds the lock)."""
    target = User.objects.filter(username=tally.username).first() or User(username=tally.username)
    assert tally.first_unreported_at is not None and tally.last_failure_at is not None
    audit_record(
        actor=actor,
        actor_name=None if actor is not None else "anonymous",
        action=AuditAction(tally.action),
        target=target,
        data={
            "username": tally.username,
            "address": tally.address,
            "failures": tally.unreported,
            "first_at": tally.first_unreported_at.isoformat(),
            "last_at": tally.last_failure_at.isoformat(),
            **(data or {}),
        },
    )
    tally.unreported = 0
    tally.first_unreported_at = None
    tally.reported_at = now


def failure_reports_flush() -> int:
    """Report every tally whose interval has passed; return how many events
    were written. Tallies quiet for a day are dropped."""
    now = timezone.now()
    written = 0
    due = FailureTally.objects.filter(unreported__gt=0, reported_at__lte=now - _interval())
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            tally = FailureTally.objects.select_for_update().filter(pk=pk, unreported__gt=0).first()
            if tally is None or (tally.reported_at is not None and now - tally.reported_at < _interval()):
                continue
            _report(tally, now)
            tally.save()
            written += 1
    FailureTally.objects.filter(unreported=0, reported_at__lt=now - timedelta(days=1)).delete()
    if written:
        logger.info("reported %d tallies of failures", written)
    return written


def sign_in_failed(username: str, address: str) -> None:
    """A failed sign-in (wrong password, unknown username, or locked out)."""
    failure_report(SIGN_IN_FAILED, username=username, address=address)


def sign_in_succeeded(username: str, address: str) -> None:
    """Clear the failures of this username from this address only.

    Failures of the same username from other addresses, and of other
    usernames from this address, still count towards their lock-outs: a
    person who signs in proves they know their own password, nothing more.
    """
    AccessAttempt.objects.filter(username=username, ip_address=address).delete()
