"""Everything that moves: where it is (``state``), how it ended or got there
(``outcome``), and why (``reason``).

Each moving thing has a table of the moves it may make, here, and
``transition`` is the one function that changes a state: it locks the row,
checks the move against the table, writes the new values, and appends the
audit event in the same transaction (STYLE.md rule 3; Read the Docs keeps
a build's state apart from its outcome the same way).

| thing          | states                                                      | outcomes                              |
| -------------- | ----------------------------------------------------------- | ------------------------------------- |
| Release build  | queued → building → finished                                | built, failed                         |
| Deployment     | pending_approval → approved → queued → uploading →          | succeeded, failed, rejected,          |
|                | verifying → finished                                        | cancelled, expired                    |
| DeploymentFile | pending → on_index → verified; pending → stopped            | uploaded, skipped; conflict, failed   |
| Job            | queued → running → finished (running → queued: requeued)    | succeeded, failed, cancelled          |
| Webhook        | queued → finished                                           | done, ignored, failed                 |
| ChangeRequest  | pending → finished                                          | applied, refused, cancelled, failed   |
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils import timezone

from releases.actors import Actor
from releases.models import AuditAction, ChangeRequest, Deployment, DeploymentFile, Job, Release, WebhookDelivery
from releases.redaction import redact
from releases.services.audit import audit_record

D = Deployment.State
DO = Deployment.Outcome
R = Release.State
RO = Release.Outcome
F = DeploymentFile.State
FO = DeploymentFile.Outcome
J = Job.State
JO = Job.Outcome
W = WebhookDelivery.State
WO = WebhookDelivery.Outcome
C = ChangeRequest.State
CO = ChangeRequest.Outcome

NO_OUTCOME: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Machine:
    """One moving thing: its moves (state → next state → the outcomes that
    move may carry), its final state, and how its audit events read."""

    name: str  # the audit action's prefix
    moves: Mapping[str, Mapping[str, frozenset[str]]]
    final: str | None  # None: no single final state (a file stops or is verified)

    def check(self, current: str, to: str, outcome: str) -> None:
        allowed = self.moves.get(current, {}).get(to)
        if allowed is None:
            raise TransitionError(f"A {self.name} that is {current} cannot become {to}.")
        if (outcome or allowed) and outcome not in allowed:
            wanted = ", ".join(sorted(allowed)) or "none"
            raise TransitionError(f"A {self.name} moving from {current} to {to} ends {wanted}, not {outcome!r}.")

    def action(self, to: str, outcome: str) -> AuditAction:
        return AuditAction(f"{self.name}.{outcome if to == self.final else to}")


class TransitionError(Exception):
    """A move the thing's current state does not allow."""


def _f(*outcomes: str) -> frozenset[str]:
    return frozenset(outcomes)


DEPLOYMENT = Machine(
    "deployment",
    {
        D.PENDING_APPROVAL: {D.APPROVED: NO_OUTCOME, D.FINISHED: _f(DO.REJECTED, DO.CANCELLED, DO.EXPIRED, DO.FAILED)},
        D.APPROVED: {D.QUEUED: NO_OUTCOME, D.FINISHED: _f(DO.CANCELLED, DO.FAILED)},
        D.QUEUED: {D.UPLOADING: NO_OUTCOME, D.VERIFYING: NO_OUTCOME, D.FINISHED: _f(DO.CANCELLED, DO.FAILED)},
        D.UPLOADING: {D.VERIFYING: NO_OUTCOME, D.FINISHED: _f(DO.FAILED)},
        D.VERIFYING: {D.FINISHED: _f(DO.SUCCEEDED, DO.FAILED)},
    },
    D.FINISHED,
)
RELEASE = Machine(
    "release",
    {
        R.QUEUED: {R.BUILDING: NO_OUTCOME, R.FINISHED: _f(RO.FAILED)},
        R.BUILDING: {R.FINISHED: _f(RO.BUILT, RO.FAILED)},
    },
    R.FINISHED,
)
FILE = Machine(
    "file",
    {
        F.PENDING: {F.ON_INDEX: _f(FO.UPLOADED, FO.SKIPPED), F.STOPPED: _f(FO.CONFLICT, FO.FAILED)},
        F.ON_INDEX: {F.VERIFIED: NO_OUTCOME},
    },
    None,
)
JOB = Machine(
    "job",
    {
        J.QUEUED: {J.RUNNING: NO_OUTCOME, J.FINISHED: _f(JO.CANCELLED, JO.FAILED)},
        J.RUNNING: {J.QUEUED: NO_OUTCOME, J.FINISHED: _f(JO.SUCCEEDED, JO.FAILED, JO.CANCELLED)},
    },
    J.FINISHED,
)
WEBHOOK = Machine("webhook", {W.QUEUED: {W.FINISHED: _f(WO.DONE, WO.IGNORED, WO.FAILED)}}, W.FINISHED)

CHANGE_REQUEST = Machine(
    "change_request", {C.PENDING: {C.FINISHED: _f(CO.APPLIED, CO.REFUSED, CO.CANCELLED, CO.FAILED)}}, C.FINISHED
)

MACHINES: dict[type[models.Model], Machine] = {
    Deployment: DEPLOYMENT,
    Release: RELEASE,
    DeploymentFile: FILE,
    Job: JOB,
    WebhookDelivery: WEBHOOK,
    ChangeRequest: CHANGE_REQUEST,
}

Moving = TypeVar("Moving", Deployment, Release, DeploymentFile, Job, WebhookDelivery, ChangeRequest)


def transition(
    thing: Moving,
    to: str,
    *,
    outcome: str = "",
    reason: str = "",
    actor: Actor = None,
    changes: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    expect: Collection[str] | None = None,
    where: Mapping[str, Any] | None = None,
) -> Moving | None:
    """Move ``thing`` to state ``to`` (with ``outcome``), audited.

    ``changes`` are further fields written with the move (a job's worker;
    a value may be a function of the locked row, such as the next attempt). ``expect`` and ``where`` make the move
    conditional: when the locked row is in another state, or its fields
    differ (a job's attempt), nothing changes and None is returned, as for
    a worker that lost a race. A move the table forbids raises
    TransitionError; either way nothing is half-written.
    """
    machine = MACHINES[type(thing)]
    with transaction.atomic():
        current: Moving = type(thing).objects.select_for_update().get(pk=thing.pk)
        if expect is not None and current.state not in expect:
            return None
        if where and any(getattr(current, field) != value for field, value in where.items()):
            return None
        old = current.state
        machine.check(old, to, outcome)
        extra: dict[str, Any] = {
            name: value(current) if callable(value) else value for name, value in (changes or {}).items()
        }
        fields: dict[str, Any] = {"state": to, **_timestamps(current, to, outcome), **extra}
        if outcome or to == machine.final:
            fields["outcome"] = outcome
        if reason:
            fields["reason"] = redact(reason)[:5000]
        for name, value in fields.items():
            setattr(current, name, value)
        current.save(update_fields=[*fields, *(["updated_at"] if isinstance(current, DeploymentFile) else [])])
        audit_record(
            actor=actor,
            action=machine.action(to, outcome),
            target=current,
            release=_release_of(current),
            data={
                **_describe(current),
                "from": old,
                "to": to,
                **({"outcome": outcome} if outcome else {}),
                **({"reason": fields["reason"]} if reason else {}),
                **dict(data or {}),
            },
        )
    thing.refresh_from_db()
    return thing


def _timestamps(current: models.Model, to: str, outcome: str) -> dict[str, Any]:
    now = timezone.now()
    if isinstance(current, Deployment):
        stamps: dict[str, Any] = {}
        if to in (D.UPLOADING, D.VERIFYING) and current.started_at is None:
            stamps["started_at"] = now
        if to == D.FINISHED:
            stamps["finished_at"] = now
        return stamps
    if isinstance(current, Release) and outcome == RO.BUILT:
        return {"built_at": now}
    if isinstance(current, Job):
        if to == J.RUNNING:
            return {"started_at": now, "heartbeat_at": now}
        if to == J.QUEUED:
            return {"queued_at": now}
        if to == J.FINISHED:
            return {"finished_at": now, "step": ""}
    return {}


def _release_of(thing: models.Model) -> Release | None:
    if isinstance(thing, Release):
        return thing
    if isinstance(thing, (Deployment, Job)):
        return thing.release
    if isinstance(thing, DeploymentFile):
        return thing.deployment.release
    return None


def _describe(thing: models.Model) -> dict[str, Any]:
    """What names the thing in its audit event, beside the move itself."""
    if isinstance(thing, Deployment):
        return {"environment": thing.environment.name, "version": thing.release.version}
    if isinstance(thing, Release):
        return {"project": thing.project.name, "version": thing.version}
    if isinstance(thing, DeploymentFile):
        return {"deployment": thing.deployment_id, "file": thing.artifact.filename, "sha256": thing.artifact.sha256}
    if isinstance(thing, Job):
        return {"kind": thing.kind, "attempt": thing.attempts, "deployment": thing.deployment_id}
    if isinstance(thing, WebhookDelivery):
        return {"event": thing.event, "delivery": thing.delivery_id, "project": thing.project_name}
    if isinstance(thing, ChangeRequest):
        return {"kind": thing.kind, "target": f"{thing.target_type}:{thing.target_name}", "changes": thing.changes}
    return {}
