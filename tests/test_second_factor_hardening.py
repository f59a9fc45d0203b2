"""A thief with an approver's password, and nothing else, against the real
pages (Django's test client): the second factor cannot be replaced,
removed or added to, an old verification does not approve, sign-in is
throttled per username and per address, and an unknown username is
answered exactly like a known one."""

from __future__ import annotations

import re
import statistics
import time
from base64 import b32decode
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from releases.models import Approval, AuditEvent, FailureTally
from releases.services.second_factor import VERIFIED_AT_SESSION_KEY
from releases.services.sign_in import failure_reports_flush
from tests import test_approvals_views as approval_pages
from tests.support.insider import verify_session
from tests.support.people import make_user
from tests.test_approvals_views import PASSWORD, decide_data, verified_client
from tests.test_settings import run_manage

# The approval pages' fixtures: two environments, four people, a pending push to PyPI.
environments = approval_pages.environments
people = approval_pages.people
pending = approval_pages.pending

LOGIN = "/accounts/login/"


def signed_in_with_password(username: str, address: str = "198.51.100.66") -> Client:
    """What a thief has: the sign-in form and the password, from their own address."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def code_from_page(html: str) -> str:
    """A current code for the key the enrolment page shows (as an app would compute it)."""
    match = re.search(r"enter this key by hand: <code>([A-Z2-7]+)</code>", html)
    assert match is not None, "the enrolment page shows no key"
    secret = match.group(1)
    key = b32decode(secret + "=" * (-len(secret) % 8))
    return f"{totp(key, step=30, t0=0, digits=6):06d}"


def recovery_codes(user) -> list[str]:
    return list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))


def fail_sign_in(username: str, address: str) -> int:
    return Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": "not the password"}).status_code


def test_a_password_alone_cannot_re_enrol_the_authenticator_app(people):
    alice = people["approver"]
    verified_client(alice)
    old = TOTPDevice.objects.get(user=alice, confirmed=True)
    thief = signed_in_with_password("alice")

    # The page still shows a new key (a person with a recovery code uses it)...
    page = thief.get(reverse("releases:second_factor") + "?again=1")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="recovery_code"' in html
    # ...but confirming it, even with a right code from the new key, is refused.
    response = thief.post(reverse("releases:second_factor_confirm"), {"token": code_from_page(html)})

    assert response.status_code == 403
    assert "already have a second factor" in response.content.decode()
    assert list(TOTPDevice.objects.filter(user=alice, confirmed=True)) == [old]
    refused = AuditEvent.objects.get(action="second_factor.change_refused")
    assert refused.data["change"] == "add authenticator app"
    assert refused.data["address"] == "198.51.100.66"
    assert refused.data["devices"]["devices"] == [f"authenticator app: Authenticator app ({old.persistent_id})"]


def test_a_password_alone_cannot_remove_a_device_add_a_passkey_or_make_recovery_codes(people):
    alice = people["approver"]
    verified_client(alice)
    old = TOTPDevice.objects.get(user=alice, confirmed=True)
    codes = recovery_codes(alice)
    thief = signed_in_with_password("alice")

    removed = thief.post(reverse("releases:second_factor_remove"), {"device": old.persistent_id})
    passkey = thief.post(reverse("otp_webauthn:credential-registration-begin"), content_type="application/json")
    new_codes = thief.post(reverse("releases:recovery_codes_new"))
    guessed = thief.post(
        reverse("releases:second_factor_remove"), {"device": old.persistent_id, "recovery_code": "guessed1"}
    )

    assert removed.status_code == 403
    assert passkey.status_code == 403
    assert passkey.json()["code"] == "second_factor_change_refused"
    assert new_codes.status_code == 403
    assert guessed.status_code == 403
    assert TOTPDevice.objects.filter(pk=old.pk, confirmed=True).exists()
    assert sorted(recovery_codes(alice)) == sorted(codes)
    assert AuditEvent.objects.filter(action="second_factor.change_refused").count() == 4
    # The guessed recovery code counts as a failed verification.
    failed = AuditEvent.objects.get(action="second_factor.failed")
    assert failed.data["method"] == "recovery code" and failed.data["address"] == "198.51.100.66"


def test_a_recovery_code_replaces_a_lost_phone_and_is_used_up(people, mailoutbox, django_capture_on_commit_callbacks):
    alice = people["approver"]
    verified_client(alice)
    old = TOTPDevice.objects.get(user=alice, confirmed=True)
    code, *others = recovery_codes(alice)
    owner = signed_in_with_password("alice", address="203.0.113.7")
    html = owner.get(reverse("releases:second_factor") + "?again=1").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            reverse("releases:second_factor_confirm"), {"token": code_from_page(html), "recovery_code": code}
        )

    assert response.status_code == 302
    new = TOTPDevice.objects.get(user=alice, confirmed=True)
    assert new.pk != old.pk
    assert not TOTPDevice.objects.filter(pk=old.pk).exists()
    assert sorted(recovery_codes(alice)) == sorted(others)
    # Used up: the same code no longer verifies a session.
    again = owner.post(reverse("releases:second_factor_verify"), {"token": code})
    assert again.status_code == 400
    enrolled = AuditEvent.objects.filter(action="second_factor.enrolled").last()
    assert enrolled.data["authorised_by"] == "recovery code"
    assert enrolled.data["before"]["recovery_codes"] == len(others) + 1
    assert enrolled.data["after"]["recovery_codes"] == len(others)
    removed = AuditEvent.objects.get(action="second_factor.device_removed")
    assert removed.data["device"] == old.persistent_id and removed.data["address"] == "203.0.113.7"
    # Alice is told of both, with when and from where.
    assert [m.to for m in mailoutbox] == [["alice@example.org"], ["alice@example.org"]]
    bodies = "\n".join(m.body for m in mailoutbox)
    assert "was removed" in bodies and "was added" in bodies
    assert bodies.count("from the address 203.0.113.7") == 2
    assert re.search(r"at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", bodies)


def test_the_person_is_mailed_when_a_device_is_added_and_removed(
    people, mailoutbox, django_capture_on_commit_callbacks
):
    alice = people["approver"]
    client = Client(REMOTE_ADDR="192.0.2.20")
    client.force_login(alice)
    html = client.get(reverse("releases:second_factor")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(reverse("releases:second_factor_confirm"), {"token": code_from_page(html)})
    assert first.status_code == 200  # a first enrolment shows the recovery codes
    assert len(mailoutbox) == 1
    assert "authenticator app 'Authenticator app' was added" in mailoutbox[0].body
    assert "from the address 192.0.2.20" in mailoutbox[0].body

    # The session is verified by the enrolment itself: removing needs nothing more.
    device = TOTPDevice.objects.get(user=alice, confirmed=True)
    with django_capture_on_commit_callbacks(execute=True):
        removed = client.post(reverse("releases:second_factor_remove"), {"device": device.persistent_id})
    assert removed.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    assert len(mailoutbox) == 2
    assert "was removed" in mailoutbox[1].body and "192.0.2.20" in mailoutbox[1].body


def test_an_administrator_removing_a_device_in_the_admin_is_mailed(
    people, mailoutbox, django_capture_on_commit_callbacks
):
    alice = people["approver"]
    verified_client(alice)
    device = TOTPDevice.objects.get(user=alice, confirmed=True)
    admin = Client()
    admin.force_login(people["admin"])
    verify_session(admin, people["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert [m.to for m in mailoutbox] == [["alice@example.org"]]
    assert "was removed by an administrator" in mailoutbox[0].body


def test_an_approval_with_a_13_hour_old_verification_asks_again(pending, people):
    client = verified_client(people["approver"])
    session = client.session
    session[VERIFIED_AT_SESSION_KEY] = (timezone.now() - timedelta(hours=13)).isoformat()
    session.save()

    page = client.get(reverse("releases:approval", args=[pending.pk])).content.decode()
    assert "Verify your second factor" in page
    assert 'name="decision"' not in page
    refused = client.post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending))
    assert refused.status_code == 403
    assert "second factor" in refused.content.decode()
    assert not Approval.objects.exists()
    # Nor does the old verification change devices.
    device = TOTPDevice.objects.get(user=people["approver"], confirmed=True)
    assert client.post(reverse("releases:second_factor_remove"), {"device": device.persistent_id}).status_code == 403

    # Verified again, the same person approves.
    code = recovery_codes(people["approver"])[0]
    assert client.post(reverse("releases:second_factor_verify"), {"token": code}).status_code == 302
    approved = client.post(reverse("releases:approval_decide", args=[pending.pk]), decide_data(pending))
    assert approved.status_code == 302
    assert Approval.objects.get(deployment=pending).second_factor is True


def test_new_recovery_codes_replace_the_old_ones_in_a_verified_session(pending, people):
    alice = people["approver"]
    verified_client(alice)
    old_codes = recovery_codes(alice)
    client = signed_in_with_password("alice")
    assert client.post(reverse("releases:second_factor_verify"), {"token": old_codes[0]}).status_code == 302

    page = client.post(reverse("releases:recovery_codes_new"))

    assert page.status_code == 200
    shown = re.findall(r"<li><code>(\w+)</code></li>", page.content.decode())
    assert sorted(shown) == sorted(recovery_codes(alice)) and not set(shown) & set(old_codes)
    event = AuditEvent.objects.get(action="second_factor.recovery_codes_replaced")
    assert event.data["before"]["recovery_codes"] == len(old_codes) - 1
    assert event.data["after"]["recovery_codes"] == len(shown)
    # Verified with a recovery code, the session stays verified once the codes change.
    html = client.get(reverse("releases:approval", args=[pending.pk])).content.decode()
    assert 'value="approve"' in html


def test_failed_second_factor_codes_are_audited_at_most_once_a_minute_with_a_count(people):
    alice = people["approver"]
    verified_client(alice)
    client = signed_in_with_password("alice")
    for _ in range(3):
        assert client.post(reverse("releases:second_factor_verify"), {"token": "000000"}).status_code == 400
    events = AuditEvent.objects.filter(action="second_factor.failed")
    assert [e.data["failures"] for e in events] == [1]
    FailureTally.objects.update(reported_at=timezone.now() - timedelta(minutes=1))
    failure_reports_flush()
    assert [e.data["failures"] for e in events.order_by("id")] == [1, 2]


@pytest.mark.django_db
def test_sign_in_is_locked_per_username_across_addresses(settings):
    make_user("carol")
    for n in range(settings.AXES_FAILURE_LIMIT):
        fail_sign_in("carol", f"203.0.113.{n + 1}")
    # The right password, from an address that never failed: still locked.
    response = Client(REMOTE_ADDR="192.0.2.99").post(LOGIN, {"username": "carol", "password": PASSWORD})
    assert response.status_code == 429
    assert "Sign-in locked for a while" in response.content.decode()


@pytest.mark.django_db
def test_sign_in_is_locked_per_address_across_usernames(settings):
    make_user("carol")
    for n in range(settings.AXES_FAILURE_LIMIT):
        fail_sign_in(f"guess{n}", "198.51.100.7")
    from_there = Client(REMOTE_ADDR="198.51.100.7").post(LOGIN, {"username": "carol", "password": PASSWORD})
    assert from_there.status_code == 429
    elsewhere = Client(REMOTE_ADDR="192.0.2.10").post(LOGIN, {"username": "carol", "password": PASSWORD})
    assert elsewhere.status_code == 302


@pytest.mark.django_db
def test_signing_in_to_ones_own_account_does_not_clear_the_failures_of_another(settings):
    make_user("carol")
    make_user("mallory")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        fail_sign_in("carol", "198.51.100.8")
    # An insider signs in from the same address, then tries once more elsewhere.
    assert signed_in_with_password("mallory", address="198.51.100.8")
    fail_sign_in("carol", "192.0.2.11")
    response = Client(REMOTE_ADDR="192.0.2.12").post(LOGIN, {"username": "carol", "password": PASSWORD})
    assert response.status_code == 429


@pytest.mark.django_db
def test_behind_a_proxy_the_client_address_is_the_one_the_proxy_saw(settings):
    settings.CLIENT_ADDRESS_HEADER = "X-Forwarded-For"
    settings.CLIENT_ADDRESS_PROXIES = 1
    make_user("carol")
    proxy = "10.0.0.2"
    # Each attempt forges a different left part of the header; the proxy appends the real address.
    for n in range(settings.AXES_FAILURE_LIMIT):
        Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}, 192.0.2.50").post(
            LOGIN, {"username": f"guess{n}", "password": "nope"}
        )
    attacker = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.77, 192.0.2.50")
    assert attacker.post(LOGIN, {"username": "carol", "password": PASSWORD}).status_code == 429
    someone_else = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.51")
    assert someone_else.post(LOGIN, {"username": "carol", "password": PASSWORD}).status_code == 302
    addresses = {e.data["address"] for e in AuditEvent.objects.filter(action="auth.login_failed")}
    assert addresses == {"192.0.2.50"}


@pytest.mark.django_db
def test_without_a_proxy_setting_a_forwarded_header_is_ignored():
    make_user("carol")
    Client(REMOTE_ADDR="192.0.2.60", HTTP_X_FORWARDED_FOR="203.0.113.1").post(
        LOGIN, {"username": "carol", "password": "nope"}
    )
    assert AuditEvent.objects.get(action="auth.login_failed").data["address"] == "192.0.2.60"


def _normalised(response, username: str) -> str:
    html = response.content.decode()
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'"X-CSRFToken": "[^"]+"', "", html)
    return html.replace(username, "USERNAME")


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _timed_failure(username: str, address: str) -> tuple[float, object]:
    started = time.perf_counter()
    response = Client(REMOTE_ADDR=address).post(LOGIN, {"username": username, "password": "not the password"})
    return time.perf_counter() - started, response


@pytest.mark.django_db
def test_unknown_and_known_usernames_get_the_same_answer_in_the_same_time():
    make_user("carol")
    hashing = statistics.median(_timed(lambda: make_password("not the password")) for _ in range(3))

    # Taken in turns, below the lock-out, each from an address of its own.
    known, unknown = [], []
    for n in range(1, 4):
        known.append(_timed_failure("carol", f"203.0.113.{n}"))
        unknown.append(_timed_failure("nobody-here", f"198.51.100.{n}"))

    assert {r.status_code for _, r in known + unknown} == {200}
    assert _normalised(known[0][1], "carol") == _normalised(unknown[0][1], "nobody-here")
    known_time = statistics.median(t for t, _ in known)
    unknown_time = statistics.median(t for t, _ in unknown)
    # An unknown username still runs the password hasher (Django's ModelBackend does).
    assert unknown_time >= 0.5 * hashing
    assert 1 / 3 < unknown_time / known_time < 3


@pytest.mark.django_db
def test_unknown_and_known_usernames_are_locked_out_alike(settings):
    make_user("carol")
    answers = {}
    for username in ("carol", "nobody-here"):
        for n in range(settings.AXES_FAILURE_LIMIT):
            fail_sign_in(username, f"203.0.{len(answers)}.{n}")
        answers[username] = Client(REMOTE_ADDR="192.0.2.200").post(LOGIN, {"username": username, "password": "x"})
    assert answers["carol"].status_code == answers["nobody-here"].status_code == 429
    assert _normalised(answers["carol"], "carol") == _normalised(answers["nobody-here"], "nobody-here")
    # Locked out, the right password gets the same page as a wrong one.
    right = Client(REMOTE_ADDR="192.0.2.201").post(LOGIN, {"username": "carol", "password": PASSWORD})
    assert _normalised(right, "carol") == _normalised(answers["carol"], "carol")


def test_a_wrong_code_gets_the_same_answer_whatever_second_factor_the_person_has(people):
    verified_client(people["approver"])
    with_device = signed_in_with_password("alice")
    without = signed_in_with_password("oscar")
    answers = [c.post(reverse("releases:second_factor_verify"), {"token": "123456"}) for c in (with_device, without)]
    assert [a.status_code for a in answers] == [400, 400]
    for answer in answers:
        assert "That code does not match." in answer.content.decode()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WEBAUTHN_ORIGINS", "http://127.0.0.1:8000", "WEBAUTHN_ORIGINS entry 'http://127.0.0.1:8000'"),
        ("WEBAUTHN_ORIGINS", "https://console.example.org/approvals", "without a path"),
        ("CLIENT_ADDRESS_HEADER", "X-Forwarded-For: 1.2.3.4", "is not a header name"),
        ("SECOND_FACTOR_MAX_AGE_HOURS", "0", "below the minimum of 1"),
    ],
)
def test_a_bad_second_factor_or_address_setting_stops_start_up_with_its_name(variable, value, message):
    result = run_manage({variable: value}, "check")
    assert result.returncode != 0
    assert message in result.stderr
