"""Downloads: each Python version's share of a project's daily downloads,
drawn as a chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone

from releases.models import DownloadCount, Project


@dataclass(frozen=True)
class AdoptionLine:
    label: str
    points: str  # SVG polyline points
    latest_share: float
    colour: str


@dataclass(frozen=True)
class AdoptionChart:
    width: int
    height: int
    lines: list[AdoptionLine]
    first_day: date | None
    last_day: date | None
    total_downloads: int


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def adoption_chart(project: Project, *, days: int = 90, width: int = 600, height: int = 200) -> AdoptionChart:
    """Each Python version's share of the project's daily downloads, as SVG
    polylines (x: day, y: share)."""
    since = timezone.now().date() - timedelta(days=days)
    rows = DownloadCount.objects.filter(
        project=project, category=DownloadCount.Category.PYTHON_MINOR, date__gte=since
    ).order_by("date")
    by_day: dict[date, dict[str, int]] = {}
    for row in rows:
        by_day.setdefault(row.date, {})[row.label] = row.downloads
    if not by_day:
        return AdoptionChart(width, height, [], None, None, 0)
    dates = sorted(by_day)
    labels = sorted({label for counts in by_day.values() for label in counts}, key=_version_key)
    span = max((dates[-1] - dates[0]).days, 1)
    lines = []
    for i, label in enumerate(labels):
        points = []
        share = 0.0
        for day in dates:
            total = sum(by_day[day].values()) or 1
            share = by_day[day].get(label, 0) / total
            x = (day - dates[0]).days / span * width
            y = height - share * height
            points.append(f"{x:.1f},{y:.1f}")
        lines.append(AdoptionLine(label, " ".join(points), round(share * 100, 1), PALETTE[i % len(PALETTE)]))
    total_downloads = sum(sum(c.values()) for c in by_day.values())
    return AdoptionChart(width, height, lines, dates[0], dates[-1], total_downloads)


def _version_key(label: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in label.split("."))
    except ValueError:
        return (10**6,)
