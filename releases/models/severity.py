from __future__ import annotations

from django.db import models


class Severity(models.TextChoices):
    """How bad a known vulnerability is, in the CVSS qualitative scale."""

    UNKNOWN = "unknown", "Unknown"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class BlockSeverity(models.TextChoices):
    """An environment's policy: the lowest severity that blocks a push."""

    NONE = "none", "Never block"
    LOW = "low", "Low and above"
    MEDIUM = "medium", "Medium and above"
    HIGH = "high", "High and above"
    CRITICAL = "critical", "Critical only"


# A finding whose severity nobody published counts as high: a policy that
# blocks at high or below must not let it through unseen.
SEVERITY_RANK: dict[str, int] = {
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.UNKNOWN: 3,
    Severity.CRITICAL: 4,
}
BLOCK_RANK: dict[str, int] = {
    BlockSeverity.LOW: 1,
    BlockSeverity.MEDIUM: 2,
    BlockSeverity.HIGH: 3,
    BlockSeverity.CRITICAL: 4,
}
