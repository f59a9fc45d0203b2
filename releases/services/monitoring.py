"""After release: download counts, and credentials getting old."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from releases.clients import pypistats
from releases.errors import StepFailed, TransientError
from releases.models import DownloadCount, Project
from releases.selectors.credentials import CredentialAge, credential_age_warnings
from releases.services.config import retry_policy
from releases.services.scans import admin_emails

logger = logging.getLogger(__name__)


def downloads_fetch(project: Project) -> int:
    """Store the project's daily downloads, overall and by Python version."""
    rows = [
        (DownloadCount.Category.OVERALL, count)
        for count in pypistats.daily_counts(settings.PYPISTATS_API_URL, project.name, "overall", policy=retry_policy())
    ] + [
        (DownloadCount.Category.PYTHON_MINOR, count)
        for count in pypistats.daily_counts(
            settings.PYPISTATS_API_URL, project.name, "python_minor", policy=retry_policy()
        )
    ]
    with transaction.atomic():
        for category, count in rows:
            DownloadCount.objects.update_or_create(
                project=project,
                date=count.day,
                category=category,
                label=count.label[:40],
                defaults={"downloads": count.downloads},
            )
    return len(rows)


def downloads_fetch_all() -> dict[str, int]:
    stored: dict[str, int] = {}
    for project in Project.objects.all():
        try:
            stored[project.name] = downloads_fetch(project)
        except (TransientError, StepFailed) as exc:
            logger.warning("downloads of %s: %s", project.name, exc)
    return stored


def credentials_age_check() -> list[CredentialAge]:
    """Email the administrators about credentials past the warning age."""
    warnings = credential_age_warnings()
    recipients = admin_emails()
    if warnings and recipients:
        send_mail(
            subject=f"[release console] {len(warnings)} credentials need replacing",
            message="\n".join(f"- {w.message}" for w in warnings)
            + "\n\nReplace each with a new token from its index, then delete the old token there.",
            from_email=None,
            recipient_list=recipients,
        )
    return warnings
