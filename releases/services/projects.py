"""Projects and environments: what the console releases, and where to."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from releases.actors import Actor
from releases.models import Credential, Environment, Project
from releases.services.audit import audit_record
from releases.services.credentials import credential_create
from releases.validators import clean_github_repository, clean_http_url, clean_project_name, clean_source


def project_create(
    *,
    name: str,
    source: str,
    github_repository: str = "",
    workflow_file: str = "publish.yml",
    tag_pattern: str = "v*.*.*",
    strict_checks: bool = False,
    actor: Actor,
) -> Project:
    canonical = clean_project_name(name)
    source = clean_source(source)
    if github_repository:
        clean_github_repository(github_repository)
    if not tag_pattern or any(ch.isspace() for ch in tag_pattern):
        raise ValidationError(f"{tag_pattern!r} is not a tag pattern (for example v*.*.*).")
    if Project.objects.filter(name=canonical).exists():
        raise ValidationError(f"A project named {canonical!r} exists already.")
    with transaction.atomic():
        project = Project.objects.create(
            name=canonical,
            source=source,
            github_repository=github_repository,
            workflow_file=workflow_file,
            tag_pattern=tag_pattern,
            strict_checks=strict_checks,
        )
        audit_record(
            actor=actor,
            action="project.created",
            target=project,
            data={"name": canonical, "source": source, "github": github_repository},
        )
    return project


def environment_create(
    *,
    name: str,
    upload_url: str,
    index_url: str,
    title: str = "",
    fallback_index_url: str = "",
    username: str = "__token__",
    token: str = "",
    required_approvals: int = 0,
    after: str = "",
    actor: Actor,
) -> Environment:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ValidationError(f"{name!r} is not an environment name: use letters, digits, '-' and '_'.")
    clean_http_url(upload_url)
    clean_http_url(index_url)
    if fallback_index_url:
        clean_http_url(fallback_index_url)
    if required_approvals < 0 or required_approvals > 10:
        raise ValidationError("Approvals must be between 0 and 10.")
    if Environment.objects.filter(name__iexact=name).exists():
        raise ValidationError(f"An environment named {name!r} exists already.")
    earlier = None
    if after:
        earlier = Environment.objects.filter(name=after).first()
        if earlier is None:
            raise ValidationError(f"There is no environment named {after!r} to come after.")
    with transaction.atomic():
        credential = None
        if token:
            credential = credential_create(
                name=f"{name} upload token",
                value=token,
                username=username,
                kind=Credential.Kind.INDEX_TOKEN,
                actor=actor,
            )
        environment = Environment.objects.create(
            name=name,
            title=title or name,
            upload_url=upload_url,
            index_url=index_url,
            fallback_index_url=fallback_index_url,
            credential=credential,
            required_approvals=required_approvals,
            requires_success_in=earlier,
            require_second_factor=required_approvals > 0,
            position=Environment.objects.count(),
        )
        audit_record(
            actor=actor,
            action="environment.created",
            target=environment,
            data={
                "name": name,
                "index_url": index_url,
                "upload_url": upload_url,
                "required_approvals": required_approvals,
                "after": after,
            },
        )
    return environment


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
    clean_github_repository(repository)
    clean_http_url(api_url)
    if publish_mode not in Project.PublishMode.values:
        raise ValidationError(f"{publish_mode!r} is not a publish mode (twine or workflow).")
    if not workflow_file or "/" in workflow_file or not workflow_file.endswith((".yml", ".yaml")):
        raise ValidationError(f"{workflow_file!r} is not a workflow file name (for example publish.yml).")
    inputs = {str(k): str(v) for k, v in (workflow_inputs or {}).items()}
    if "environment" in inputs:
        raise ValidationError("The 'environment' input comes from each environment's setting; leave it out here.")
    with transaction.atomic():
        project.github_repository = repository
        project.github_api_url = api_url
        project.workflow_file = workflow_file
        project.workflow_inputs = inputs
        project.publish_mode = publish_mode
        project.release_on_created = release_on_created
        if token:
            project.github_credential = credential_create(
                name=f"{project.name} GitHub token {Credential.objects.count() + 1}",
                value=token,
                kind=Credential.Kind.GITHUB_TOKEN,
                actor=actor,
            )
        if webhook_secret:
            project.webhook_secret = credential_create(
                name=f"{project.name} webhook secret {Credential.objects.count() + 1}",
                value=webhook_secret,
                kind=Credential.Kind.WEBHOOK_SECRET,
                actor=actor,
            )
        project.save()
        audit_record(
            actor=actor,
            action="project.github_set",
            target=project,
            data={
                "repository": repository,
                "api_url": api_url,
                "workflow_file": workflow_file,
                "workflow_inputs": inputs,
                "publish_mode": publish_mode,
                "token_replaced": bool(token),
                "webhook_secret_replaced": bool(webhook_secret),
                "release_on_created": release_on_created,
            },
        )
    return project


def environment_update(
    environment: Environment,
    *,
    actor: Actor,
    title: str | None = None,
    upload_url: str | None = None,
    index_url: str | None = None,
    required_approvals: int | None = None,
    after: str | None = None,
    allowed_ref_pattern: str | None = None,
    request_ttl_hours: int | None = None,
    require_second_factor: bool | None = None,
    credential: Credential | None = None,
) -> Environment:
    """Change an environment's target or rules; the audit event keeps before and after.

    Only the arguments given change. ``after`` names the environment that
    must have succeeded first ("" removes the rule).
    """
    changes: dict[str, object] = {}
    if title is not None:
        changes["title"] = title.strip() or environment.name
    if upload_url is not None:
        changes["upload_url"] = clean_http_url(upload_url)
    if index_url is not None:
        changes["index_url"] = clean_http_url(index_url)
    if required_approvals is not None:
        if required_approvals < 0 or required_approvals > 10:
            raise ValidationError("Approvals must be between 0 and 10.")
        changes["required_approvals"] = required_approvals
    if after is not None:
        earlier = None
        if after:
            earlier = Environment.objects.filter(name=after).first()
            if earlier is None:
                raise ValidationError(f"There is no environment named {after!r} to come after.")
            seen = {environment.pk}
            step: Environment | None = earlier
            while step is not None:
                if step.pk in seen:
                    raise ValidationError(f"{environment.name} cannot come after {after}: the order would loop.")
                seen.add(step.pk)
                step = step.requires_success_in
        changes["requires_success_in"] = earlier
    if allowed_ref_pattern is not None:
        if any(ch.isspace() for ch in allowed_ref_pattern):
            raise ValidationError(f"{allowed_ref_pattern!r} is not a ref pattern (for example v*.*.*).")
        changes["allowed_ref_pattern"] = allowed_ref_pattern
    if request_ttl_hours is not None:
        if request_ttl_hours < 1 or request_ttl_hours > 24 * 365:
            raise ValidationError("A request stays open between 1 hour and 365 days.")
        changes["request_ttl_hours"] = request_ttl_hours
    if require_second_factor is not None:
        changes["require_second_factor"] = require_second_factor
    if credential is not None:
        changes["credential"] = credential
    with transaction.atomic():
        locked = Environment.objects.select_for_update().get(pk=environment.pk)
        diff: dict[str, dict[str, object]] = {}
        for field, value in changes.items():
            before = getattr(locked, field)
            if before != value:
                diff[field] = {"before": _audit_value(before), "after": _audit_value(value)}
                setattr(locked, field, value)
        if not diff:
            return locked
        locked.save(update_fields=list(diff))
        audit_record(actor=actor, action="environment.changed", target=locked, data={"name": locked.name, **diff})
    environment.refresh_from_db()
    return environment


def _audit_value(value: object) -> object:
    if isinstance(value, Environment):
        return value.name
    if isinstance(value, Credential):
        return f"{value.name} (…{value.last_four})"
    return value
