"""Small template helpers: times, durations and status badges."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Protocol

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def when(value: datetime | None) -> SafeString | str:
    """A <time> in UTC; the page's script shows it in local time with '3 min ago'."""
    if value is None:
        return "—"
    utc = timezone.localtime(value, UTC) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}" title="{} UTC">{} UTC</time>',
        utc.isoformat(),
        utc.strftime("%Y-%m-%d %H:%M:%S"),
        utc.strftime("%Y-%m-%d %H:%M"),
    )


# Colour and cursor codes that tools print for terminals (twine's PASSED in green).
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@register.filter
def plain(text: str) -> str:
    return _TERMINAL_CODES.sub("", text)


@register.filter
def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class Labelled(Protocol):
    """Anything that moves: its word for where it is or how it ended."""

    @property
    def label(self) -> str: ...

    @property
    def label_key(self) -> str: ...


@register.simple_tag
def status(thing: Labelled) -> SafeString:
    """A badge whose colour follows where ``thing`` is (or how it ended), with the word itself for everyone."""
    return format_html('<span class="badge badge-{}">{}</span>', thing.label_key or "none", thing.label)
