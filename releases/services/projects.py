"""Projects and environments: what the console releases, and where to.

Every path that writes one (the headless commands, the console's forms,
Django's admin) comes through here: the model's ``clean`` holds the rules,
``full_clean`` runs them before each save, and the audit event keeps the
values before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models, transaction
from packaging.utils import canonicalize_name
from packaging.version import Version

from releases.actors import Actor
from releases.errors import StepFailed, TransientError
from releases.models import AuditAction, BlockSeverity, ChangeRequest, Credential, Environment, Project
from releases.models.projects import is_pypi_address
from releases.models.severity import BLOCK_RANK
from releases.services.audit import audit_record
from releases.services.change_requests import change_request_file
from releases.services.credentials import credential_create
from releases.services.notifications import protection_notify
from releases.services.workflow import github_refs
from releases.steps.git_tags import remote_tags
from releases.validators import version_from_tag


def project_create(*, name: str, source: str, actor: Actor, **fields: Any) -> Project:
    """A new project; ``name`` is stored as PyPI normalizes it."""
    canonical = canonicalize_name(name) if name.strip() else name
    project = Project(name=canonical, source=source, **fields)
    _validate(project, original_name=name)
    if Project.objects.filter(name=canonical).exists():
        raise ValidationError({"name": [f"A project named {canonical!r} exists already."]})
    with transaction.atomic():
        project.save()
        audit_record(
            actor=actor,
            action=AuditAction.PROJECT_CREATED,
            target=project,
            data={"name": canonical, **{field: _audit_value(project, field) for field in ("source", *fields)}},
        )
    return project


def project_update(project: Project, *, actor: Actor, **changes: Any) -> Project:
    """Change a project's fields; the audit event keeps before and after."""
    return _update(project, changes, actor=actor, action=AuditAction.PROJECT_CHANGED)


@dataclass(frozen=True)
class TagCandidate:
    """A tag of the project's repository that names a version not released yet."""

    tag: str
    version: str


def project_unreleased_tags(project: Project, *, limit: int = 20) -> tuple[list[TagCandidate], str]:
    """Tags matching the project's pattern whose version has no release yet,
    newest version first, and why none could be listed ("" when they could).

    Asked of GitHub for a project that has its repository there, else of the
    git source itself; kept for a minute, as a page is viewed again and again.
    """
    key = f"project-tags:{project.pk}:{project.source}:{project.github_repository}"
    tags = cache.get(key)
    if not isinstance(tags, list):
        try:
            tags = github_refs(project) if project.github_repository else remote_tags(project.source)
        except (StepFailed, TransientError) as exc:
            return [], str(exc)
        cache.set(key, tags, 60)
    released = set(project.releases.values_list("version", flat=True))
    found: dict[str, TagCandidate] = {}
    for tag in tags:
        if not fnmatchcase(tag, project.tag_pattern):
            continue
        try:
            version = version_from_tag(tag)
        except ValidationError:
            continue
        if version not in released and version not in found:
            found[version] = TagCandidate(tag, version)
    ordered = sorted(found.values(), key=lambda c: Version(c.version), reverse=True)
    return ordered[:limit], ""


def project_set_github(
    project: Project,
    *,
    repository: str,
    api_url: str = "https://api.github.com",
    workflow_file: str = "publish.yml",
    workflow_inputs: dict[str, str] | None = None,
    publish_mode: str = Project.PublishMode.TWINE,
    token: str = "",
    webhook_secret: str = "",
    release_on_created: bool = False,
    actor: Actor,
) -> Project:
    """Wire ``project`` to its GitHub repository (docs/github.md). An empty
    token or secret keeps the one stored; the values are stored encrypted."""
    changes: dict[str, Any] = {
        "github_repository": repository,
        "github_api_url": api_url,
        "workflow_file": workflow_file,
        "workflow_inputs": {str(k): str(v) for k, v in (workflow_inputs or {}).items()},
        "publish_mode": publish_mode,
        "release_on_created": release_on_created,
    }
    if not repository:
        raise ValidationError({"github_repository": ["Name the repository as owner/name."]})
    with transaction.atomic():
        if token:
            changes["github_credential"] = credential_create(
                name=f"{project.name} GitHub token {Credential.objects.count() + 1}",
                value=token,
                kind=Credential.Kind.GITHUB_TOKEN,
                actor=actor,
            )
        if webhook_secret:
            changes["webhook_secret"] = credential_create(
                name=f"{project.name} webhook secret {Credential.objects.count() + 1}",
                value=webhook_secret,
                kind=Credential.Kind.WEBHOOK_SECRET,
                actor=actor,
            )
        return _update(project, changes, actor=actor, action=AuditAction.PROJECT_CHANGED)


def environment_create(
    *,
    name: str,
    upload_url: str,
    index_url: str,
    title: str = "",
    username: str = "__token__",
    token: str = "",
    after: str = "",
    actor: Actor,
    **fields: Any,
) -> Environment:
    """A new environment; ``token`` (if any) is stored encrypted as its
    credential, ``after`` names the environment it must follow. PyPI's
    upload rules apply to PyPI's and Test PyPI's addresses unless
    ``pypi_rules`` says otherwise."""
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValidationError({"name": [f"{name!r} is not an environment name: use letters, digits, '-' and '_'."]})
    if Environment.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": [f"An environment named {name!r} exists already."]})
    borrowed = fields.get("credential")
    if isinstance(borrowed, Credential):
        environment_credential_check(borrowed, exclude=None)
    fields.setdefault("require_second_factor", fields.get("required_approvals", 0) > 0)
    fields.setdefault("pypi_rules", is_pypi_address(upload_url) or is_pypi_address(index_url))
    fields.setdefault("position", Environment.objects.count())
    environment = Environment(
        name=name,
        title=title or name,
        upload_url=upload_url,
        index_url=index_url,
        requires_success_in=_environment_named(after) if after else None,
        **fields,
    )
    _validate(environment)
    with transaction.atomic():
        if token:
            environment.credential = credential_create(
                name=f"{name} upload token",
                value=token,
                username=username,
                kind=Credential.Kind.INDEX_TOKEN,
                actor=actor,
            )
        environment.save()
        audit_record(
            actor=actor,
            action=AuditAction.ENVIRONMENT_CREATED,
            target=environment,
            data={
                "name": name,
                **{
                    field: _audit_value(environment, field)
                    for field in ("upload_url", "index_url", "required_approvals", "requires_success_in", *fields)
                },
            },
        )
    return environment


def environment_update(
    environment: Environment, *, actor: Actor, after: str | None = None, **changes: Any
) -> Environment:
    """Change an environment's target or rules (``environment_change``), for
    the callers that only need the environment back."""
    return environment_change(environment, actor=actor, after=after, **changes).environment


@dataclass(frozen=True)
class EnvironmentChange:
    """What an environment change did: the environment as it is now, and the
    request that waits for a second administrator (None when nothing lowered
    its protection)."""

    environment: Environment
    request: ChangeRequest | None


# The fields whose change can lower an environment's protection, and when it does.
LOWERS: dict[str, Callable[[Any, Any], bool]] = {
    "required_approvals": lambda before, after: int(after) < int(before),
    "require_second_factor": lambda before, after: bool(before) and not after,
    "upload_url": lambda before, after: before != after,
    "index_url": lambda before, after: before != after,
    "credential": lambda before, after: after is not None and after != before,
    "requires_success_in": lambda before, after: before is not None and after != before,
    "allowed_ref_pattern": lambda before, after: bool(before) and after != before,
    "pypi_rules": lambda before, after: bool(before) and not after,
    "index_account": lambda before, after: bool(before) and after != before,
    "workflow_environment": lambda before, after: before != after,
    "block_severity": lambda before, after: _block_rank(after) > _block_rank(before),
}


def _block_rank(severity: str) -> int:
    # "Never block" is the weakest policy of all.
    return 99 if severity == BlockSeverity.NONE else BLOCK_RANK.get(severity, 99)


def environment_change(
    environment: Environment, *, actor: Actor, after: str | None = None, **changes: Any
) -> EnvironmentChange:
    """Change an environment's target or rules; the audit event keeps before and after.

    1. Only the fields given change. ``after`` names the environment that
       must have succeeded first ("" removes the rule).
    2. What raises protection, or leaves it as it was, is written at once
       (and the approvers are told when it is a rule of ``LOWERS``).
    3. What lowers it (``LOWERS``: fewer approvals, the second factor off,
       another upload or index address, another credential, an earlier
       environment or ref pattern removed, PyPI's rules off...) becomes a
       change request, checked whole now, that takes effect only when another
       administrator approves it (``change_decisions``); the approvers are told.
    """
    if after is not None:
        changes["requires_success_in"] = _environment_named(after) if after else None
    if "title" in changes:
        changes["title"] = str(changes["title"]).strip() or environment.name
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        lowering = {
            field: value
            for field, value in changes.items()
            if field in LOWERS and LOWERS[field](getattr(locked, field), value)
        }
        at_once = {field: value for field, value in changes.items() if field not in lowering}
        request = _protection_request(locked, lowering, actor=actor) if lowering else None
        updated = _update(environment, at_once, actor=actor, action=AuditAction.ENVIRONMENT_CHANGED)
        raised = {field: value for field, value in at_once.items() if field in LOWERS}
        if raised:
            _notify_raised(locked, raised)
    return EnvironmentChange(updated, request)


def _notify_raised(before: Environment, raised: dict[str, Any]) -> None:
    lines = [
        f"{field}: {_audit_value(before, field)!r} → {_plain(value)!r}"
        for field, value in raised.items()
        if _audit_value(before, field) != _plain(value)
    ]
    if lines:
        protection_notify(before.name, lines, "changed (protection kept or raised, in effect now)")


def _plain(value: object) -> object:
    if isinstance(value, Environment):
        return value.name
    if isinstance(value, Credential):
        return f"{value.name} (…{value.last_four})"
    return value


def _protection_request(locked: Environment, lowering: dict[str, Any], *, actor: Actor) -> ChangeRequest:
    """File the lowering part of a change, once the environment with it would pass its rules."""
    draft = Environment.objects.get(pk=locked.pk)
    for field, value in lowering.items():
        setattr(draft, field, value)
    _validate(draft)
    if "credential" in lowering:
        environment_credential_check(lowering["credential"], exclude=locked)
    changes = {
        field: {"before": _audit_value(locked, field), "after": _audit_value(draft, field)} for field in lowering
    }
    values = {field: value.pk if isinstance(value, models.Model) else value for field, value in lowering.items()}
    request = change_request_file(
        kind=ChangeRequest.Kind.ENVIRONMENT,
        target_type="environment",
        target_id=locked.pk,
        target_name=locked.name,
        changes=changes,
        values=values,
        actor=actor,
    )
    protection_notify(
        locked.name,
        [f"{field}: {value['before']!r} → {value['after']!r}" for field, value in changes.items()],
        f"to be lowered (change request #{request.pk}, waiting for a second administrator)",
    )
    return request


def environment_apply_request(request: ChangeRequest, *, actor: Actor) -> Environment:
    """Write an approved protection change, if the environment still holds
    the values it was asked against (else ValidationError: nothing changes)."""
    environment = Environment.objects.select_for_update().get(pk=request.target_id)
    stale = [
        field for field, value in request.changes.items() if _audit_value(environment, field) != value.get("before")
    ]
    if stale:
        raise ValidationError(
            f"{environment.name} changed since the request was made ({', '.join(stale)}); ask for the change again."
        )
    changes: dict[str, Any] = {}
    for field, value in request.values.items():
        if field == "credential":
            changes[field] = Credential.objects.get(pk=value) if value is not None else None
        elif field == "requires_success_in":
            changes[field] = Environment.objects.get(pk=value) if value is not None else None
        else:
            changes[field] = value
    updated = _update(
        environment,
        changes,
        actor=actor,
        action=AuditAction.ENVIRONMENT_CHANGED,
        extra={
            "change_request": request.pk,
            "requested_by": request.requested_by.get_username() if request.requested_by else "system",
        },
    )
    protection_notify(
        environment.name,
        [f"{field}: {value['before']!r} → {value['after']!r}" for field, value in request.changes.items()],
        f"lowered (change request #{request.pk}, approved by {_name(actor)})",
    )
    return updated


def _name(actor: Actor) -> str:
    return actor.get_username() if actor is not None and actor.is_authenticated else "system"


def environment_credential_check(credential: Credential, *, exclude: Environment | None) -> None:
    """An environment gets a token of its own: one that borrowed another
    environment's token would reach that index without its protection."""
    others = Environment.objects.filter(credential=credential)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    names = sorted(others.values_list("name", flat=True))
    if names:
        raise ValidationError(
            {
                "credential": [
                    f"{credential.name} is the token of {', '.join(names)}; give this environment a token of its own."
                ]
            }
        )


def _environment_named(name: str) -> Environment:
    earlier = Environment.objects.filter(name=name).first()
    if earlier is None:
        raise ValidationError({"requires_success_in": [f"There is no environment named {name!r} to come after."]})
    return earlier


Record = TypeVar("Record", Project, Environment)


def _update(
    record: Record,
    changes: dict[str, Any],
    *,
    actor: Actor,
    action: AuditAction,
    extra: dict[str, object] | None = None,
) -> Record:
    """Set ``changes`` on the locked row, check it whole, save what differs,
    and audit each field's value before and after (nothing when nothing changed)."""
    with transaction.atomic():
        locked = type(record).objects.select_for_update().get(pk=record.pk)
        diff: dict[str, dict[str, object]] = {}
        for field, value in changes.items():
            before = _audit_value(locked, field)
            setattr(locked, field, value)
            after = _audit_value(locked, field)
            if before != after:
                diff[field] = {"before": before, "after": after}
        if not diff:
            return record
        _validate(locked)
        locked.save(update_fields=list(diff))
        audit_record(actor=actor, action=action, target=locked, data={"name": locked.name, **diff, **(extra or {})})
    record.refresh_from_db()
    return record


def _validate(record: Project | Environment, *, original_name: str | None = None) -> None:
    """The model's rules, as one ValidationError a form or a command can show."""
    try:
        record.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        if original_name is not None and "name" in exc.message_dict:
            raise ValidationError({"name": [_bad_project_name(original_name)]}) from None
        raise


def _bad_project_name(raw: str) -> str:
    return (
        f"{raw!r} is not a valid project name: use letters, digits, '.', '_' and '-', "
        "starting and ending with a letter or digit."
    )


def _audit_value(record: models.Model, field: str) -> object:
    """A field's value as the audit trail keeps it (credentials by name and last four)."""
    value = getattr(record, field)
    if isinstance(value, Environment):
        return value.name
    if isinstance(value, Credential):
        return f"{value.name} (…{value.last_four})"
    if isinstance(value, models.Model):
        return str(value)
    return value
