"""A release page left open on a job that prints nothing asks the server
less and less often (console.js), and still shows the next change within
the longest wait: in a real browser, counting the requests it makes."""

from __future__ import annotations

import itertools
import time

import pytest
from django.utils import timezone
from playwright.sync_api import Request, expect

from releases.models import Job
from releases.views.live import LIVE_POLL
from tests.support.console import ReleaseFactory, person_with_role
from tests.support.tools import needs
from tests.test_console_browser import browser, page, sign_in  # noqa: F401  (fixtures)

pytestmark = needs("chromium")


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_live_part_is_asked_for_less_often_and_a_change_still_shows(page, live_server):  # noqa: F811
    release = ReleaseFactory(project__name="quiet-pkg", version="1.0.0")
    job = Job.objects.create(
        kind=Job.Kind.BUILD,
        release=release,
        state=Job.State.RUNNING,
        step="uv build --sdist",
        started_at=timezone.now(),
    )
    person_with_role("viewer", username="vera")
    sign_in(page, live_server.url, "vera")
    asked: list[float] = []

    def count(request: Request) -> None:
        if request.url.split("?", 1)[0].endswith("/releases/1.0.0/live/"):
            asked.append(time.monotonic())

    page.on("request", count)
    page.goto(f"{live_server.url}/projects/quiet-pkg/releases/1.0.0/")
    expect(page.get_by_text("uv build --sdist").first).to_be_visible()
    opened = time.monotonic()
    window = 3 * LIVE_POLL.most
    page.wait_for_timeout(window * 1000)
    ticks = window // LIVE_POLL.every
    quiet = [at for at in asked if at >= opened]
    # Without the back-off each of the ticks would ask; with it the waits
    # grow 1, 2, 4, 8, 8... seconds.
    assert 2 <= len(quiet) <= ticks // 2, (len(quiet), ticks)
    gaps = [b - a for a, b in itertools.pairwise(quiet)]
    assert max(gaps) <= LIVE_POLL.most + 2 * LIVE_POLL.every, gaps  # the wait stops growing at the most

    # A change shows within the longest wait and a tick, and the page is
    # then followed at every tick again.
    Job.objects.filter(pk=job.pk).update(step="uv build --wheel")
    expect(page.get_by_text("uv build --wheel").first).to_be_visible(
        timeout=(LIVE_POLL.most + 2 * LIVE_POLL.every) * 1000
    )
    Job.objects.filter(pk=job.pk).update(step="uv build --wheel, again")
    expect(page.get_by_text("uv build --wheel, again").first).to_be_visible(timeout=3 * LIVE_POLL.every * 1000)
