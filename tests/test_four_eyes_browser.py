"""Four eyes against an insider, in a real browser (Chromium through
Playwright) against a live server: an approver who is also an
administrator enrols an authenticator app and approves a push; she then
lowers the environment's protection in the admin, which waits until another
administrator approves it on the change requests page; the audit page
shows the values before and after."""

from __future__ import annotations

from pathlib import Path

from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from releases.models import Approval, ChangeRequest, Deployment, Environment, Job
from releases.services.deployments import deployment_request
from releases.services.pipeline import job_run
from releases.services.projects import project_create
from releases.services.roles import role_assign
from tests.support.console import person_with_role
from tests.support.insider import totp_now
from tests.support.publishing import pypi_environment, stored_release
from tests.support.pypi_packages import build_package
from tests.support.pypi_standin import PypiStandin
from tests.support.tools import needs
from tests.test_console_browser import SCREENSHOTS, browser, page, sign_in  # noqa: F401  (fixtures)

pytestmark = needs("chromium")


def enrol_authenticator_app(page: Page, base: str, username: str) -> None:  # noqa: F811
    """Set up an authenticator app on the second-factor page, as a person does
    with their phone (the code is the one the app would show)."""
    page.goto(f"{base}/account/second-factor/")
    expect(page.get_by_role("heading", name="Set up a second factor")).to_be_visible()
    device = TOTPDevice.objects.get(user__username=username, confirmed=False)
    expect(page.locator("code").first).to_be_visible()
    page.get_by_label("Code", exact=True).fill(totp_now(device))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("recovery code", exact=False).first).to_be_visible()
    assert TOTPDevice.objects.filter(user__username=username, confirmed=True).exists()


def test_an_approver_enrols_approves_and_a_second_admin_decides_her_protection_change(
    page,  # noqa: F811
    live_server,
    monkeypatch,
    pypi_standin: PypiStandin,
    tmp_path: Path,
):
    monkeypatch.setattr("releases.services.jobs.job_send", lambda job_id, kind=None: None)
    rita = person_with_role("releaser", username="rita")
    anna = person_with_role("approver", username="anna")
    role_assign(anna, "admin", actor=None)
    person_with_role("admin", username="adam")
    pypi = pypi_environment(pypi_standin, "pypi", "PyPI", required_approvals=1, require_second_factor=True)
    project = project_create(name="sample-pkg", source=str(tmp_path), actor=None)
    release = stored_release(project, "1.0.0", build_package(tmp_path, "sample-pkg", "1.0.0").paths)
    pushed = deployment_request(release=release, environment=pypi, actor=rita)
    base = live_server.url

    # Anna enrols an authenticator app, and approves the push: the page says where it goes.
    sign_in(page, base, "anna")
    enrol_authenticator_app(page, base, "anna")
    page.goto(f"{base}/deployments/{pushed.pk}/approval/")
    destination = page.locator("dl.destination")
    expect(destination).to_contain_text(pypi_standin.upload_url)
    expect(destination).to_contain_text(pushed.destination["credential_fingerprint"][:16])
    page.get_by_label("Comment").fill("Files and destination checked.")
    page.get_by_role("button", name="Approve these files").click()
    expect(page.get_by_role("status")).to_contain_text("You approved the push")
    approval = Approval.objects.get(deployment=pushed)
    assert approval.second_factor is True and approval.destination == pushed.destination
    upload = Job.objects.get(deployment=pushed, kind=Job.Kind.UPLOAD)
    job_run(upload.pk)
    assert Deployment.objects.get(pk=pushed.pk).state == Deployment.State.VERIFYING
    assert len(pypi_standin.uploads) == 2

    # Anna, an administrator too, lowers PyPI to no approval in the admin: it waits.
    page.goto(f"{base}/admin/releases/environment/{pypi.pk}/change/")
    page.get_by_label("Required approvals").fill("0")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("ul.messagelist")).to_contain_text("waits for a second administrator")
    assert Environment.objects.get(pk=pypi.pk).required_approvals == 1
    change = ChangeRequest.objects.get(kind=ChangeRequest.Kind.ENVIRONMENT)
    page.goto(f"{base}/changes/")
    expect(page.get_by_text("You asked for this change; another administrator must decide it.")).to_be_visible()
    expect(page.get_by_role("button", name=f"Approve change request #{change.pk}")).to_have_count(0)
    page.goto(f"{base}/")
    page.get_by_role("button", name="Sign out").click()

    # Adam, another administrator, verifies his session and approves it.
    sign_in(page, base, "adam")
    enrol_authenticator_app(page, base, "adam")
    page.goto(f"{base}/changes/")
    expect(page.locator("table.changes").first).to_contain_text("required_approvals: 1 → 0")
    page.screenshot(path=str(SCREENSHOTS / "change-requests.png"), full_page=True)
    page.get_by_role("button", name=f"Approve change request #{change.pk}").click()
    expect(page.get_by_role("status")).to_contain_text("applied")
    assert Environment.objects.get(pk=pypi.pk).required_approvals == 0

    # The audit trail shows who asked, who approved, and the values before and after.
    page.goto(f"{base}/audit/?action=environment.changed")
    table = page.locator("table.audit")
    expect(table).to_contain_text('"required_approvals": {"after": 0, "before": 1}')
    expect(table).to_contain_text('"requested_by": "anna"')
    expect(table.locator("tbody tr").first).to_contain_text("adam")
