"""Redaction of anything shaped like a token, before it is stored or logged.

Every writer of text that a person or a log file may read (job logs, the
Python logging handlers, error messages stored on rows) passes it through
:func:`redact`. Known secret values (the credential a job is using) are
registered with :func:`register_secret` and removed exactly; token shapes
are removed by pattern even when nobody registered them.
"""

from __future__ import annotations

import logging
import re
import threading

REDACTED = "[redacted]"

# PyPI API tokens are macaroons serialised as "pypi-" + base64url; GitHub
# tokens have documented prefixes (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_).
# Each pattern comes with the pieces of text one of which every match of it
# contains: a text holding none of them is not searched with the pattern. A
# pattern that starts with \b or a lookbehind is tried at every position of
# the text, a hundred times slower than a substring search, and a job's log
# (hundreds of thousands of lines) passes through here.
TOKEN_PATTERNS: list[tuple[tuple[str, ...], re.Pattern[str]]] = [
    (("pypi-",), re.compile(r"pypi-[A-Za-z0-9_\-]{16,}")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}")),
    # The signed link that hands the approved files to a publishing workflow.
    (("/publish-files/",), re.compile(r"(?<=/publish-files/)[^/\s]+")),
    # user:password@ in URLs.
    (("://",), re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")),
]

_lock = threading.Lock()
_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Make ``value`` redacted wherever it appears from now on in this process."""
    if len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pieces, pattern in TOKEN_PATTERNS:
        if any(piece in text for piece in pieces):
            text = pattern.sub(REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record's message, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Formatting the traceback later would print the raw exception.
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True
