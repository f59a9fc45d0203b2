"""Credential age: the secrets due for replacement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from releases.models import Credential


@dataclass(frozen=True)
class CredentialAge:
    credential: Credential
    age_days: int
    expired: bool

    @property
    def message(self) -> str:
        limit = settings.CREDENTIAL_MAX_AGE_DAYS
        if self.expired:
            return f"{self.credential.name} is {self.age_days} days old, past the {limit}-day limit: replace it now."
        return f"{self.credential.name} is {self.age_days} days old; replace it before it reaches {limit} days."


def credential_age_warnings() -> list[CredentialAge]:
    """Credentials whose secret was set longer ago than the warning age."""
    now = timezone.now()
    warn_before = now - timedelta(days=settings.CREDENTIAL_WARN_AGE_DAYS)
    warnings = []
    for credential in Credential.objects.order_by("name"):
        set_at = credential.rotated_at or credential.created_at
        if set_at > warn_before:
            continue
        age = (now - set_at).days
        warnings.append(CredentialAge(credential, age, age >= settings.CREDENTIAL_MAX_AGE_DAYS))
    return warnings
