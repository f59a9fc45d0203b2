"""A production push in a real browser: a releaser asks, a different person
approves with a second factor, the exact verified bytes go to the second
index and verify there, and the history shows both names."""

from __future__ import annotations

import re

from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from releases.clients.index import list_files
from releases.models import Approval, Deployment
from releases.services.deployments import deployment_request
from releases.services.releases import release_create
from tests.conftest import wait_built, wait_final
from tests.support.console import person_with_role
from tests.support.tools import needs
from tests.test_console_browser import SCREENSHOTS, browser, page, sign_in  # noqa: F401  (fixtures)

pytestmark = needs("chromium")


def test_a_push_to_pypi_is_requested_approved_by_someone_else_and_verified(
    page,  # noqa: F811
    live_server,
    worker,
    project,
    sandbox,
    devpi,
    index_account,
    pypi_account,
    pypi,
    osv_clean,
):
    assert pypi.require_second_factor
    rita = person_with_role("releaser", username="rita")
    anna = person_with_role("approver", username="anna")
    device = TOTPDevice.objects.create(user=anna, name="phone", confirmed=True)
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=rita))
    on_test_pypi = wait_final(deployment_request(release=release, environment=sandbox, actor=rita))
    assert on_test_pypi.outcome == Deployment.Outcome.SUCCEEDED
    base = live_server.url

    # The releaser asks for the push.
    sign_in(page, base, "rita")
    page.goto(f"{base}/projects/{project.name}/releases/1.0.0/")
    page.get_by_role("button", name="Request push to PyPI").click()
    expect(page.get_by_role("status")).to_contain_text("Request push to PyPI")
    pushed = Deployment.objects.get(release=release, environment=pypi)
    assert pushed.state == Deployment.State.PENDING_APPROVAL
    assert pypi_account.upload_url and devpi.upload_requests(pypi_account) == 0
    page.get_by_role("button", name="Sign out").click()

    # Somebody else approves, in a session verified with her second factor.
    sign_in(page, base, "anna")
    page.goto(f"{base}/approvals/")
    page.get_by_role("link", name=f"{project.name} 1.0.0").click()
    for artifact in release.artifacts.all():
        expect(page.locator("table.files")).to_contain_text(artifact.sha256)
    page.get_by_role("link", name="Verify your second factor").click()
    code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    page.get_by_label("Code from your app, or a recovery code").fill(f"{code:06d}")
    page.get_by_role("button", name="Verify").click()
    page.get_by_label("Comment").fill("Same digests as on Test PyPI.")
    page.screenshot(path=str(SCREENSHOTS / "approval.png"), full_page=True)
    page.get_by_role("button", name="Approve these files").click()

    final = wait_final(pushed, timeout=180)
    assert final.outcome == Deployment.Outcome.SUCCEEDED, final.reason
    approval = Approval.objects.get(deployment=final)
    assert approval.approver == anna
    assert approval.second_factor is True
    assert approval.digests == sorted(a.sha256 for a in release.artifacts.all())
    # The very bytes verified on Test PyPI are on "PyPI", each sent once.
    assert {f: e.sha256 for f, e in list_files(pypi_account.simple_url, project.name).items()} == {
        f: e.sha256 for f, e in list_files(index_account.simple_url, project.name).items()
    }
    for artifact in release.artifacts.all():
        assert devpi.stored_count(pypi_account, artifact.filename) == 1

    page.goto(f"{base}/history/")
    page.get_by_label("Environment").select_option(label="PyPI")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row", name=re.compile(rf"{project.name} 1\.0\.0"))
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text("rita")
    expect(row).to_contain_text("anna")
