"""Signed checkpoints of the audit chain's head, kept outside the database.

A checkpoint says "event #N, with hash H, was the last of C events at time
T", signed with the Ed25519 key ``AUDIT_CHECKPOINT_SIGNING_KEY``, which is
not in the database. Anyone holding the public key can check the signature;
a chain that no longer holds event #N with hash H was rewritten or cut
short, however well its own hashes and seals agree.

One checkpoint is one line of canonical JSON (``canonical_json``):
``v``, ``console``, ``event_id``, ``hash``, ``count``, ``created_at``,
``key`` (the signer's public key, base64 of its 32 raw bytes) and
``signature`` (base64 of the Ed25519 signature over the canonical JSON of
the other keys). The same line goes to every place it is written.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils import timezone

from releases.models import AuditEvent
from releases.services.audit import BrokenLink, ChainWalk, canonical_json

CHECKPOINT_FILE = "audit-checkpoints.jsonl"
FORMAT_VERSION = 1
_FIELDS = {"v", "console", "event_id", "hash", "count", "created_at", "key", "signature"}


@dataclass(frozen=True)
class Checkpoint:
    event_id: int
    hash: str
    count: int
    created_at: str
    console: str
    key: str
    signature: str
    # Where it was read ("/srv/audit/audit-checkpoints.jsonl line 3"); not signed.
    source: str = ""

    def signed_part(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "console": self.console,
            "event_id": self.event_id,
            "hash": self.hash,
            "count": self.count,
            "created_at": self.created_at,
            "key": self.key,
        }

    def line(self) -> str:
        return canonical_json({**self.signed_part(), "signature": self.signature})

    def describe(self) -> str:
        return f"the checkpoint of {self.created_at} ({self.source})"


def _raw_base64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(_raw_base64(settings.AUDIT_CHECKPOINT_SIGNING_KEY))


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes_raw()).decode()


def trusted_keys() -> set[str]:
    """The signing key's own public key, and those of the keys it replaced."""
    return {public_key_text(signing_key().public_key()), *settings.AUDIT_CHECKPOINT_PUBLIC_KEYS}


def checkpoint_sign(event_id: int, event_hash: str, count: int) -> Checkpoint:
    key = signing_key()
    unsigned = Checkpoint(
        event_id=event_id,
        hash=event_hash,
        count=count,
        created_at=timezone.now().isoformat(),
        console=settings.CONSOLE_URL,
        key=public_key_text(key.public_key()),
        signature="",
    )
    signature = key.sign(canonical_json(unsigned.signed_part()).encode())
    return replace(unsigned, signature=base64.b64encode(signature).decode())


def checkpoint_parse(line: str, source: str) -> Checkpoint:
    """One checkpoint line; ValueError saying what is wrong with it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError("is not JSON") from None
    if not isinstance(record, dict) or set(record) != _FIELDS or record["v"] != FORMAT_VERSION:
        raise ValueError(f"is not a version {FORMAT_VERSION} audit checkpoint")
    if not all(isinstance(record[name], int) for name in ("event_id", "count")):
        raise ValueError("names its event with something that is not a number")
    if not all(isinstance(record[name], str) for name in _FIELDS - {"v", "event_id", "count"}):
        raise ValueError("is not a version 1 audit checkpoint")
    return Checkpoint(**{name: record[name] for name in _FIELDS - {"v"}}, source=source)


def signature_problem(checkpoint: Checkpoint, trusted: set[str]) -> str | None:
    """Why a checkpoint cannot vouch for the chain; None when its signature holds."""
    if checkpoint.key not in trusted:
        return "is signed by a key the console does not trust (AUDIT_CHECKPOINT_PUBLIC_KEYS)"
    try:
        public = Ed25519PublicKey.from_public_bytes(_raw_base64(checkpoint.key))
        public.verify(_raw_base64(checkpoint.signature), canonical_json(checkpoint.signed_part()).encode())
    except (InvalidSignature, binascii.Error, ValueError):
        return "has a signature that does not verify (it was forged or altered)"
    return None


def checkpoint_folder() -> Path | None:
    return Path(settings.AUDIT_CHECKPOINT_DIR) if settings.AUDIT_CHECKPOINT_DIR else None


def checkpoint_files(extra: Sequence[Path] = ()) -> list[Path]:
    """The configured folder's checkpoint file, and the files or folders given besides."""
    files: list[Path] = []
    folder = checkpoint_folder()
    if folder is not None and (folder / CHECKPOINT_FILE).exists():
        files.append(folder / CHECKPOINT_FILE)
    for path in extra:
        files.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return files


@dataclass(frozen=True)
class CheckpointRead:
    trusted: list[Checkpoint]
    # One line a person reads for each checkpoint that cannot vouch for the chain.
    problems: list[str]


def checkpoints_read(files: Iterable[Path]) -> CheckpointRead:
    """Every checkpoint in ``files``; those whose signature fails are problems, not evidence."""
    trusted_set = trusted_keys()
    trusted: list[Checkpoint] = []
    problems: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"audit checkpoints unreadable: {path} ({type(exc).__name__})")
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            source = f"{path} line {number}"
            try:
                checkpoint = checkpoint_parse(line, source)
            except ValueError as exc:
                problems.append(f"audit checkpoint unreadable: {source} {exc}")
                continue
            problem = signature_problem(checkpoint, trusted_set)
            if problem is None:
                trusted.append(checkpoint)
            else:
                problems.append(f"audit checkpoint forged: {source} (naming event #{checkpoint.event_id}) {problem}")
    return CheckpointRead(trusted, problems)


class CheckpointMatcher:
    """Holds the chain to its checkpoints as ``audit_walk`` passes each event.

    A checkpoint naming event #N with hash H as the C-th event must find
    exactly that in the chain; one naming an event past the chain's end
    means the events between were deleted.
    """

    def __init__(self, checkpoints: Iterable[Checkpoint]) -> None:
        self.pending = deque(sorted(checkpoints, key=lambda c: c.event_id))
        self.confirmed_up_to = 0  # the last event a checkpoint confirmed
        self.matched = 0

    def __call__(self, position: int, event: AuditEvent) -> BrokenLink | None:
        while self.pending and self.pending[0].event_id <= event.pk:
            checkpoint = self.pending.popleft()
            if checkpoint.event_id < event.pk:
                return BrokenLink(
                    checkpoint.event_id,
                    f"{checkpoint.describe()} names event #{checkpoint.event_id}, which the chain does not hold "
                    f"(the chain goes on with #{event.pk}: events were deleted here)",
                )
            if checkpoint.hash != event.hash or checkpoint.count != position:
                return BrokenLink(
                    event.pk,
                    f"{checkpoint.describe()} names event #{event.pk} with hash {checkpoint.hash[:12]}… "
                    f"as event {checkpoint.count} of the chain, but the chain has hash {event.hash[:12]}… "
                    f"as event {position} there (the chain was rewritten at or before #{event.pk}"
                    + (
                        f", after #{self.confirmed_up_to}, the last event an earlier checkpoint confirms)"
                        if self.confirmed_up_to
                        else ")"
                    ),
                )
            self.confirmed_up_to = event.pk
            self.matched += 1
        return None

    def after(self, walk: ChainWalk) -> BrokenLink | None:
        """Once the whole chain walked: a checkpoint past its end means deleted events."""
        if not self.pending:
            return None
        furthest = self.pending[-1]
        first_missing = walk.last_id + 1
        return BrokenLink(
            first_missing,
            f"{furthest.describe()} names event #{furthest.event_id} with hash {furthest.hash[:12]}… "
            f"({furthest.count} events), but the chain ends at #{walk.last_id}: events #{first_missing} to "
            f"#{furthest.event_id} were deleted",
        )
