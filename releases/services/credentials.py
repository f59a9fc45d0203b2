"""Secrets at rest: encrypted with the console's own key ring.

The key ring (``CONSOLE_TOKEN_KEYS``) is a list of Fernet keys: the first
encrypts, every one decrypts, so a new key can be put in front and the old
one kept until ``credentials_rotate_key`` has re-encrypted every row.
"""

from __future__ import annotations

import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from releases.actors import Actor
from releases.models import AuditAction, Credential
from releases.redaction import register_secret
from releases.services.audit import audit_record


class CredentialError(Exception):
    """A credential cannot be decrypted with the configured key ring."""


def key_ring(keys: list[str] | None = None) -> MultiFernet:
    if settings.BUILDER_ONLY:
        raise CredentialError(
            "This worker is a builder (WORKER_ROLE=builder): it runs package code and holds no token key ring, "
            "so it never decrypts a credential. Jobs that need one run on a publisher."
        )
    ring = keys or settings.CONSOLE_TOKEN_KEYS
    if not ring:
        raise CredentialError("CONSOLE_TOKEN_KEYS holds no key: set it for the web server and the publishers.")
    return MultiFernet([Fernet(key.encode()) for key in ring])


def credential_create(
    *,
    name: str,
    value: str,
    kind: str = Credential.Kind.INDEX_TOKEN,
    username: str = "__token__",
    scope: str = Credential.Scope.PROJECT,
    actor: Actor = None,
) -> Credential:
    value = value.strip()
    if not value:
        raise ValueError("The secret is empty.")
    with transaction.atomic():
        credential = Credential(name=name, kind=kind, username=username, scope=scope)
        _store_value(credential, value)
        credential.save()
        audit_record(
            actor=actor,
            action=AuditAction.CREDENTIAL_CREATED,
            target=credential,
            data={"name": name, "kind": kind, "scope": scope, "last_four": credential.last_four},
        )
    return credential


def credential_change(credential: Credential, *, actor: Actor = None, **changes: str) -> Credential:
    """Change a credential's name, kind, scope or user name (never its
    secret: ``credential_set_value``), audited with before and after."""
    allowed = {"name", "kind", "scope", "username"}
    if not changes.keys() <= allowed:
        raise ValueError(f"Only {', '.join(sorted(allowed))} change here.")
    with transaction.atomic():
        locked = Credential.objects.select_for_update().get(pk=credential.pk)
        diff = {
            field: {"before": getattr(locked, field), "after": value}
            for field, value in changes.items()
            if getattr(locked, field) != value
        }
        if not diff:
            return credential
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.full_clean(validate_unique=False)
        locked.save(update_fields=list(diff))
        audit_record(
            actor=actor, action=AuditAction.CREDENTIAL_CHANGED, target=locked, data={"name": locked.name, **diff}
        )
    credential.refresh_from_db()
    return credential


def credential_set_value(credential: Credential, value: str, *, actor: Actor = None) -> None:
    """Replace the secret (a new token from the index), audited."""
    value = value.strip()
    if not value:
        raise ValueError("The secret is empty.")
    with transaction.atomic():
        _store_value(credential, value)
        credential.rotated_at = timezone.now()
        credential.save(update_fields=["encrypted_value", "last_four", "rotated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.CREDENTIAL_REPLACED,
            target=credential,
            data={"name": credential.name, "last_four": credential.last_four},
        )


def _store_value(credential: Credential, value: str) -> None:
    credential.encrypted_value = key_ring().encrypt(value.encode())
    credential.last_four = value[-4:]


def _decrypted(credential: Credential) -> str:
    """The plain value, registered for redaction."""
    try:
        value = key_ring().decrypt(bytes(credential.encrypted_value)).decode()
    except InvalidToken:
        raise CredentialError(
            f"Credential {credential.name!r} cannot be decrypted with CONSOLE_TOKEN_KEYS: "
            "the key that encrypted it is not in the key ring."
        ) from None
    register_secret(value)
    return value


def credential_reveal(credential: Credential) -> str:
    """Decrypt for use by a job. The value is registered for redaction."""
    value = _decrypted(credential)
    Credential.objects.filter(pk=credential.pk).update(last_used_at=timezone.now())
    return value


def token_fingerprint(username: str, token: str) -> str:
    """What binds an approval to one token without keeping the token: sha256
    over a label, the user name and the plain token (a key rotation, which
    re-encrypts, leaves it alone; another token changes it)."""
    return hashlib.sha256(f"release-console credential\n{username}\n{token}".encode()).hexdigest()


def credential_fingerprint(credential: Credential) -> str:
    """``token_fingerprint`` of a stored credential, decrypted here for that alone."""
    return token_fingerprint(credential.username, _decrypted(credential))


def credentials_rotate_key() -> int:
    """Re-encrypt every credential under the first key of the ring."""
    ring = key_ring()
    count = 0
    with transaction.atomic():
        for credential in Credential.objects.select_for_update().order_by("pk"):
            try:
                credential.encrypted_value = ring.rotate(bytes(credential.encrypted_value))
            except InvalidToken:
                raise CredentialError(
                    f"Credential {credential.name!r} cannot be decrypted with any key in the ring; nothing was changed."
                ) from None
            credential.save(update_fields=["encrypted_value"])
            count += 1
        audit_record(
            actor=None, action=AuditAction.CREDENTIALS_KEY_ROTATED, target=Credential(pk=0), data={"count": count}
        )
    return count
