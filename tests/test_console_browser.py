"""The console in a real browser (Chromium through Playwright) against a
live server, a Celery worker, PostgreSQL, Redis and a devpi index."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from releases.models import Deployment, Release
from releases.services.projects import environment_create
from tests.support.console import PASSWORD, ReleaseFactory, person_with_role
from tests.support.tools import CHROMIUM, needs

# `make screenshots` sets CONSOLE_SCREENSHOTS=docs/screenshots to refresh the
# committed pictures; an ordinary test run keeps its pictures to itself.
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-screenshots-"))
pytestmark = needs("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; Django's ORM
    # calls made by the test itself are still synchronous and safe.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            yield browser
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB", timezone_id="Europe/Paris")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()


def test_releaser_publishes_to_test_pypi_and_watches_it_live(
    page, live_server, worker, project, sandbox, index_account
):
    person_with_role("releaser", username="rita")
    # Production needs an approval and a success on Test PyPI first; here it is only asked for.
    environment_create(
        name="pypi",
        title="PyPI",
        upload_url=index_account.upload_url,
        index_url=index_account.simple_url,
        required_approvals=1,
        after="test-pypi",
        username=index_account.user,
        token=index_account.password,
        actor=None,
    )
    base = live_server.url
    sign_in(page, base, "rita")
    # The stylesheet and htmx came from our own server.
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).backgroundColor") == "rgb(22, 32, 51)"

    page.get_by_role("link", name=project.name).first.click()
    expect(page.get_by_role("heading", name=project.name, level=1)).to_be_visible()
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label("Git tag or ref").fill("v1.0.0")
    page.get_by_role("button", name="Create and build").click()
    expect(page.get_by_role("heading", name=f"{project.name} 1.0.0", level=1)).to_be_visible()
    assert page.evaluate("typeof htmx") == "object"
    # Inline, plain-words validation on the project page.
    page.get_by_role("link", name=project.name).first.click()
    page.get_by_label("Version").fill("1.0.0")
    page.get_by_label("Git tag or ref").fill("v1.0.0")
    page.get_by_role("button", name="Create and build").click()
    expect(page.get_by_text("sample-pkg 1.0.0 already exists; a version is built once.")).to_be_visible()
    expect(page.get_by_label("Version")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=str(SCREENSHOTS / "project.png"), full_page=True)
    page.get_by_role("link", name="1.0.0", exact=True).click()

    expect(page.get_by_role("row", name=re.compile(r"^PyPI"))).to_contain_text(
        "must be published and verified on Test PyPI before it can go to PyPI"
    )
    page.get_by_role("button", name="Publish to Test PyPI").dblclick()
    expect(page.get_by_role("status")).to_contain_text("Publish to Test PyPI: deployment #")
    expect(page.locator(".live-dot")).to_be_visible()
    log = page.get_by_role("log")
    # Follow the build's own log (the page would otherwise follow whichever
    # job runs: the build may be over, and the upload running, by now).
    page.get_by_role("link", name=re.compile(r"^Build #\d+ log$")).click()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # The log streams in while the jobs run, without a reload.
    expect(log).to_contain_text("$ uv build", timeout=60_000)
    page.screenshot(path=str(SCREENSHOTS / "release-live-log.png"), full_page=True)

    environments = page.get_by_role("row", name=re.compile(r"^Test PyPI"))
    expect(environments.locator(".badge")).to_have_text("Succeeded", timeout=180_000)
    expect(page.locator(".live-dot")).to_have_count(0)  # polling stopped
    expect(page.get_by_role("heading", name=re.compile(r"On Test PyPI: deployment #\d+"))).to_be_visible()
    expect(page.get_by_text("Verified: installed from the index")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True
    page.get_by_role("link", name=re.compile(r"^Verify #\d+ log$")).click()
    expect(log).to_contain_text("imported sample_pkg")
    # Each job keeps its log: the upload's is one click away.
    page.get_by_role("link", name=re.compile(r"^Upload #\d+ log$")).click()
    expect(page.get_by_role("log")).to_contain_text("$ twine upload --repository-url")
    expect(page.get_by_role("log")).to_contain_text("uploaded, sha256")

    # The double click started one deployment.
    deployment = Deployment.objects.get(release__version="1.0.0", environment=sandbox)
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED
    assert deployment.requested_by.username == "rita"

    # Now the push to PyPI can be asked for; it waits for someone else's approval.
    page.get_by_role("button", name="Request push to PyPI").click()
    pypi_row = page.get_by_role("row", name=re.compile(r"^PyPI"))
    expect(pypi_row.locator(".badge")).to_have_text("Pending approval")
    expect(pypi_row).to_contain_text("0 of 1 approvals")
    assert Deployment.objects.get(environment__name="pypi").state == Deployment.State.PENDING_APPROVAL
    page.screenshot(path=str(SCREENSHOTS / "release-published.png"), full_page=True)

    page.get_by_role("link", name="Release history").click()
    row = page.get_by_role("row", name=re.compile(rf"{project.name} 1\.0\.0 Test PyPI"))
    expect(row).to_contain_text("Succeeded")
    expect(page.get_by_role("row", name=re.compile(rf"{project.name} 1\.0\.0 PyPI"))).to_contain_text(
        "Pending approval"
    )
    expect(row).to_contain_text("rita")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    assert "status=failed" in page.url
    expect(page.get_by_text("No deployment matches these filters.")).to_be_visible()
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name=re.compile(rf"{project.name} 1\.0\.0"))).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "release-history.png"), full_page=True)

    page.get_by_role("link", name="Dashboard").click()
    board = page.get_by_role("row", name=re.compile(project.name))
    expect(board).to_contain_text("1.0.0")
    expect(board).to_contain_text("live")
    expect(page.get_by_role("heading", name="Recent activity")).to_be_visible()
    waiting = page.get_by_role("region", name="Waiting for approval")
    expect(waiting).to_contain_text(f"{project.name} 1.0.0 to PyPI, 0 of 1 approvals")
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)


def test_viewer_sees_no_publish_button_and_a_crafted_post_is_refused(page, live_server, transactional_db, sandbox):
    person_with_role("viewer", username="vera")
    release = ReleaseFactory(project__name="sample-pkg", version="2.0.0")
    base = live_server.url
    sign_in(page, base, "vera")

    page.goto(f"{base}/projects/sample-pkg/releases/2.0.0/")
    expect(page.get_by_role("heading", name="sample-pkg 2.0.0", level=1)).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^Test PyPI"))).to_contain_text("not sent yet")
    expect(page.get_by_role("button", name=re.compile("Publish to|Request push to"))).to_have_count(0)
    page.goto(f"{base}/projects/sample-pkg/")
    expect(page.get_by_role("button", name="Create and build")).to_have_count(0)

    # The form is not there, so forge the request, with a valid CSRF token.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{base}/projects/sample-pkg/releases/2.0.0/publish/test-pypi/",
        headers={"X-CSRFToken": token, "Referer": base + "/"},
    )
    assert response.status == 403
    assert "CSRF" not in response.text()
    assert not Deployment.objects.filter(release=release).exists()
    response = page.request.post(
        f"{base}/projects/sample-pkg/releases/",
        form={"version": "2.0.1", "ref": "v2.0.1"},
        headers={"X-CSRFToken": token, "Referer": base + "/"},
    )
    assert response.status == 403
    assert not Release.objects.filter(version="2.0.1").exists()
