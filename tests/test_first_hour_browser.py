"""The first hour, in a real browser and by what the pages say: an empty
console says what to do first, a project is added from the console, its
tag becomes a release with one click, a push is asked for and found again,
an approver gets from the dashboard to the approval with a second factor set
up on the way, and every page follows the push live."""

from __future__ import annotations

import re
from base64 import b32decode
from pathlib import Path

import pytest
from django_otp.oath import totp
from playwright.sync_api import Browser, Page, expect

from releases.models import Deployment, Project
from tests.conftest import index_environment
from tests.support.console import person_with_role
from tests.test_console_browser import CHROMIUM, browser, page, sign_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


def second_person(browser: Browser, base: str, username: str) -> Page:  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-GB")
    other = context.new_page()
    other.set_default_timeout(15_000)
    sign_in(other, base, username)
    return other


def test_a_first_release_from_an_empty_console_to_an_approved_push(
    page,  # noqa: F811
    browser,  # noqa: F811
    live_server,
    worker,
    sample_repo,
    devpi,
    index_account,
    pypi_account,
    osv_clean,
):
    base = live_server.url
    person_with_role("admin", username="ada")
    person_with_role("releaser", username="rita")
    person_with_role("approver", username="anna")
    index_environment(index_account, "test-pypi", "Test PyPI")
    index_environment(pypi_account, "pypi", "PyPI", required_approvals=1, after="test-pypi")

    # An empty console says what to do first, and the project is added there.
    sign_in(page, base, "ada")
    expect(page.get_by_text("No projects yet.")).to_be_visible()
    page.get_by_role("link", name="Add your first project").click()
    page.get_by_label("Name").fill("Sample_Pkg")
    page.get_by_label("Git repository").fill(str(sample_repo.path))
    page.get_by_role("button", name="Add the project").click()
    expect(page.get_by_text("Write the name as PyPI normalizes it: 'sample-pkg'.")).to_be_visible()
    assert not Project.objects.exists()
    page.get_by_label("Name").fill("sample-pkg")
    page.get_by_role("button", name="Add the project").click()
    expect(page.get_by_role("heading", name="sample-pkg", level=1)).to_be_visible()
    assert page.title() == "sample-pkg · Release console"
    page.get_by_role("button", name="Sign out").click()

    # The tag in the repository is one click from a release.
    sign_in(page, base, "rita")
    page.goto(f"{base}/projects/sample-pkg/")
    page.get_by_role("button", name="Create release 1.0.0 from v1.0.0").click()
    expect(page.get_by_role("heading", name="sample-pkg 1.0.0", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="SBOM (CycloneDX 1.6)")).to_have_count(0)  # none yet
    page.get_by_role("button", name="Publish to Test PyPI").click()
    test_pypi = page.get_by_role("row", name=re.compile(r"^Test PyPI"))
    expect(test_pypi.locator(".badge")).to_have_text("Succeeded", timeout=180_000)
    # The supply chain and the timeline followed without a reload.
    expect(page.get_by_role("link", name="SBOM (CycloneDX 1.6)")).to_be_visible()
    expect(page.locator(".timeline")).to_contain_text("deployment.succeeded")

    # The push to PyPI is asked for, and its page is one link away, from the release and from "My requests".
    page.get_by_role("button", name="Request push to PyPI").click()
    pushed = Deployment.objects.get(environment__name="pypi")
    page.get_by_role("link", name=f"Review push #{pushed.pk}").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Push sample-pkg 1\.0\.0 to PyPI"))).to_be_visible()
    expect(page.get_by_text("You asked for this push; another person must approve it.")).to_be_visible()
    page.get_by_role("link", name="Approvals").first.click()
    expect(page.get_by_role("link", name=f"Push #{pushed.pk}: sample-pkg 1.0.0")).to_be_visible()
    expect(page.get_by_role("button", name=f"Cancel request #{pushed.pk}")).to_be_visible()
    page.get_by_role("link", name=f"Push #{pushed.pk}: sample-pkg 1.0.0").click()
    page.get_by_role("link", name="The release page of sample-pkg 1.0.0").click()
    expect(page.get_by_role("heading", name="sample-pkg 1.0.0", level=1)).to_be_visible()

    # The approver goes from the dashboard to the request, sets up a second
    # factor on the way, comes back to it, and approves.
    anna = second_person(browser, base, "anna")
    anna.get_by_role("link", name=re.compile(rf"^Push #{pushed.pk}: sample-pkg 1\.0\.0 to PyPI")).click()
    anna.get_by_role("link", name="Set up a second factor").click()
    secret = anna.locator("code").filter(has_text=re.compile(r"^[A-Z2-7]{16,}$")).first.inner_text()
    key = b32decode(secret + "=" * (-len(secret) % 8))
    anna.get_by_label("Code", exact=True).fill(f"{totp(key):06d}")
    anna.get_by_role("button", name="Confirm").click()
    expect(anna.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    anna.get_by_role("link", name="Continue").click()
    expect(anna.get_by_role("heading", name=re.compile(r"^Push sample-pkg 1\.0\.0 to PyPI"))).to_be_visible()
    anna.get_by_role("button", name="Approve these files").click()
    expect(anna.get_by_text("Approved by anna")).to_be_visible()

    # Both pages follow the push to its end, without a reload.
    status = anna.locator("#approval-live .badge")
    expect(status).to_have_text("Succeeded", timeout=180_000)
    expect(page.get_by_role("row", name=re.compile(r"^PyPI")).locator(".badge")).to_have_text(
        "Succeeded", timeout=60_000
    )
    assert Deployment.objects.get(pk=pushed.pk).outcome == Deployment.Outcome.SUCCEEDED
    anna.context.close()
