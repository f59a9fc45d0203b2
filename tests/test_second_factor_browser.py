"""Passkeys in a real browser: an approver enrols one through Chromium's
virtual authenticator (the Chrome DevTools Protocol's WebAuthn domain),
signs in again another day, verifies with it, and approves a push to PyPI
that then uploads and verifies."""

from __future__ import annotations

from django_otp_webauthn.models import WebAuthnCredential
from playwright.sync_api import expect

from releases.models import Approval, AuditEvent, Deployment
from releases.services.deployments import deployment_request
from releases.services.releases import release_create
from tests.conftest import wait_built, wait_final
from tests.support.console import person_with_role
from tests.support.tools import needs
from tests.test_console_browser import SCREENSHOTS, browser, page, sign_in  # noqa: F401  (fixtures)

pytestmark = needs("chromium")


def virtual_authenticator(page) -> tuple[object, str]:  # noqa: F811
    """A platform authenticator that says yes at once, as a fingerprint reader would.

    Reference: https://chromedevtools.github.io/devtools-protocol/tot/WebAuthn/
    """
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


def test_an_approver_enrols_a_passkey_and_approves_a_push_with_it(
    page,  # noqa: F811
    live_server,
    settings,
    worker,
    project,
    sandbox,
    devpi,
    index_account,
    pypi_account,
    pypi,
    osv_clean,
):
    # The live server's origin (http://localhost:<port>) is the one passkeys answer.
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    assert pypi.require_second_factor and live_server.url.startswith("http://localhost:")
    rita = person_with_role("releaser", username="rita")
    anna = person_with_role("approver", username="anna")
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=rita))
    assert wait_final(deployment_request(release=release, environment=sandbox, actor=rita)).outcome == "succeeded"
    pushed = deployment_request(release=release, environment=pypi, actor=rita)
    assert pushed.state == Deployment.State.PENDING_APPROVAL
    base = live_server.url
    cdp, authenticator = virtual_authenticator(page)

    # Anna has no second factor yet: her first one is a passkey.
    sign_in(page, base, "anna")
    page.get_by_role("link", name="Second factor").click()
    page.get_by_role("link", name="use a passkey").click()
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("heading", name="Your devices")).to_be_visible()
    expect(page.locator("table.devices")).to_contain_text("passkey")
    page.screenshot(path=str(SCREENSHOTS / "second-factor.png"), full_page=True)
    credential = WebAuthnCredential.objects.get(user=anna, confirmed=True)
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(stored) == 1 and stored[0]["rpId"] == "localhost"
    assert AuditEvent.objects.get(action="second_factor.enrolled").data["kind"] == "passkey"
    page.get_by_role("button", name="Sign out").click()

    # Another session: the approval page asks for the second factor, and the passkey gives it.
    sign_in(page, base, "anna")
    page.goto(f"{base}/approvals/")
    page.get_by_role("link", name=f"{project.name} 1.0.0").click()
    expect(page.get_by_role("button", name="Approve these files")).to_have_count(0)
    page.get_by_role("link", name="Verify your second factor").click()
    page.get_by_role("button", name="Verify with a passkey").click()
    page.get_by_label("Comment").fill("Verified with a passkey.")
    page.screenshot(path=str(SCREENSHOTS / "approval-passkey.png"), full_page=True)
    page.get_by_role("button", name="Approve these files").click()

    final = wait_final(pushed, timeout=180)
    assert final.outcome == Deployment.Outcome.SUCCEEDED, final.reason
    approval = Approval.objects.get(deployment=final)
    assert approval.approver == anna and approval.second_factor is True
    credential.refresh_from_db()
    assert credential.last_used_at is not None
