"""Supply-chain parts that need the database but no worker: key rotation,
the README check, credential age, download counts, shipped-version alerts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.template import Context, Template
from django.utils import timezone

from releases.clients import osv
from releases.clients.http import RetryPolicy
from releases.models import (
    CheckResult,
    Credential,
    Deployment,
    DownloadCount,
    Release,
    Sbom,
    Severity,
    VulnerabilityAlert,
)
from releases.services.credentials import credential_create, credential_reveal
from releases.services.monitoring import credentials_age_check, downloads_fetch
from releases.services.scans import vulnerabilities_recheck
from releases.services.supply import check_record, sbom_record
from releases.steps import checks
from tests.support.console import DeploymentFactory, ReleaseFactory
from tests.support.sample import SampleRepo, build_wheel

pytestmark = pytest.mark.django_db


def test_rotating_the_key_reencrypts_every_credential_and_the_retired_key_alone_opens_none(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONSOLE_TOKEN_KEYS = [old]
    values = {f"token-{i}": f"pypi-secret-value-{i}-{Fernet.generate_key().decode()}" for i in range(5)}
    for name, value in values.items():
        credential_create(name=name, value=value)

    settings.CONSOLE_TOKEN_KEYS = [new, old]
    call_command("credentials_rotate_key")

    settings.CONSOLE_TOKEN_KEYS = [new]
    for credential in Credential.objects.all():
        assert credential_reveal(credential) == values[credential.name]
        with pytest.raises(InvalidToken):
            MultiFernet([Fernet(old.encode())]).decrypt(bytes(credential.encrypted_value))
    assert Credential.objects.count() == 5


def test_rotate_key_refuses_and_changes_nothing_when_a_credential_is_under_an_unknown_key(settings):
    first, second = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONSOLE_TOKEN_KEYS = [first]
    kept = credential_create(name="kept", value="value-under-first-key")
    before = bytes(Credential.objects.get(pk=kept.pk).encrypted_value)
    settings.CONSOLE_TOKEN_KEYS = [second]

    with pytest.raises(CommandError, match="'kept' cannot be decrypted with any key in the ring; nothing was changed"):
        call_command("credentials_rotate_key")

    assert bytes(Credential.objects.get(pk=kept.pk).encrypted_value) == before


def _wheel(tmp_path, readme: str, readme_file: str):
    repo = SampleRepo(tmp_path / "readme-pkg", name="readme-pkg")
    repo.commit_version("1.0.0", readme=readme, readme_file=readme_file)
    path = build_wheel(repo, tmp_path / "dist")
    with path.open("rb") as handle:
        return checks.read_wheel_metadata(handle, path.name)


BROKEN_RST = "Readme pkg\n==========\n\nSee `the docs <https://example.org>`_ and `unclosed.\n"


def test_a_broken_restructuredtext_readme_fails_the_readme_check_with_the_renderers_message(tmp_path):
    outcome = checks.readme_check(_wheel(tmp_path, BROKEN_RST, "README.rst"))

    assert not outcome.passed
    assert "text/x-rst" in outcome.detail
    # docutils stops at the first problem, as on PyPI; its message names the line.
    assert (
        "<string>:4: (WARNING/2) Inline interpreted text or phrase reference start-string without end-string"
        in outcome.detail
    )


def test_a_valid_restructuredtext_readme_passes_the_readme_check(tmp_path):
    outcome = checks.readme_check(_wheel(tmp_path, "Readme pkg\n==========\n\nAll *fine* here.\n", "README.rst"))

    assert outcome.passed, outcome.detail


def _shipped_release(project, version: str, components: list[tuple[str, str]]) -> Release:
    release = ReleaseFactory(project=project, version=version)
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [{"name": n, "version": v, "purl": f"pkg:pypi/{n}@{v}"} for n, v in components],
    }
    sbom = sbom_record(release, document)
    assert sbom is not None
    # As a finished scan leaves it (the alerts under test come from later re-checks).
    Sbom.objects.filter(pk=sbom.pk).update(scanned_at=timezone.now())
    return release


def test_a_shipped_version_that_gains_a_vulnerability_raises_one_alert_and_one_email(
    project, sandbox, osv_clean, django_user_model
):
    django_user_model.objects.create_superuser("admin", "admin@example.org", "pw-for-tests-only")
    release = _shipped_release(project, "1.0.0", [("sample-pkg", "1.0.0"), ("tiny-dep", "1.0")])
    DeploymentFactory(release=release, environment=sandbox)
    assert vulnerabilities_recheck() == {"checked": 1, "failed": 0, "new": 0}

    osv_clean.add(
        "PYSEC-2026-1", "tiny-dep", "1.0", severity="", cvss="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", fixed="1.1"
    )
    assert vulnerabilities_recheck()["new"] == 1
    assert vulnerabilities_recheck()["new"] == 0

    alert = VulnerabilityAlert.objects.get()
    assert alert.release == release
    assert alert.finding.vuln_id == "PYSEC-2026-1"
    assert alert.finding.severity == Severity.CRITICAL  # from the CVSS vector
    assert alert.emailed_to == ["admin@example.org"]
    assert len(mail.outbox) == 1
    assert "PYSEC-2026-1" in mail.outbox[0].body and "sample-pkg 1.0.0" in mail.outbox[0].subject
    dashboard = Template("{% load supply %}{% vulnerability_alerts %}").render(Context({}))
    assert "PYSEC-2026-1 in tiny-dep 1.0" in dashboard


def test_credentials_past_the_warning_age_are_flagged_and_emailed(django_user_model):
    django_user_model.objects.create_superuser("admin", "admin@example.org", "pw-for-tests-only")
    fresh = credential_create(name="fresh", value="value-fresh-123")
    aging = credential_create(name="aging", value="value-aging-123")
    old = credential_create(name="old", value="value-old-12345", scope=Credential.Scope.ACCOUNT)
    now = timezone.now()
    Credential.objects.filter(pk=aging.pk).update(created_at=now - timedelta(days=settings.CREDENTIAL_WARN_AGE_DAYS))
    Credential.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=settings.CREDENTIAL_MAX_AGE_DAYS + 3))

    warnings = credentials_age_check()

    assert [(w.credential.name, w.expired) for w in warnings] == [("aging", False), ("old", True)]
    assert fresh.pk not in {w.credential.pk for w in warnings}
    assert len(mail.outbox) == 1
    assert "old is 183 days old, past the 180-day limit" in mail.outbox[0].body
    dashboard = Template("{% load supply %}{% credential_warnings %}").render(Context({}))
    assert "aging is 150 days old" in dashboard
    assert Credential.objects.get(pk=old.pk).scope_warning.startswith("Account-wide token")
    assert Credential.objects.get(pk=fresh.pk).scope_warning == ""


def test_replacing_a_secret_restarts_its_age(django_user_model):
    from releases.selectors.credentials import credential_age_warnings
    from releases.services.credentials import credential_set_value

    old = credential_create(name="old", value="value-old-12345")
    Credential.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    assert credential_age_warnings()
    credential_set_value(Credential.objects.get(pk=old.pk), "value-new-67890")
    assert credential_age_warnings() == []


def test_beat_runs_the_daily_supply_tasks():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "releases.tasks.credentials_age_check",
        "releases.tasks.vulnerabilities_recheck",
        "releases.tasks.downloads_fetch",
        "releases.tasks.scan_pending",
    } <= tasks


def test_download_counts_are_stored_daily_and_drawn_as_a_python_version_adoption_chart(project, pypistats):
    today = timezone.now().date()
    days = [(today - timedelta(days=d)).isoformat() for d in (2, 1)]
    pypistats.rows[project.name] = [
        (days[0], "3.11", 80),
        (days[0], "3.12", 20),
        (days[1], "3.11", 50),
        (days[1], "3.12", 50),
    ]

    downloads_fetch(project)
    downloads_fetch(project)  # the same day twice is stored once

    overall = DownloadCount.objects.filter(project=project, category="overall").order_by("date")
    assert [(c.date, c.downloads) for c in overall] == [(date.fromisoformat(d), 100) for d in days]
    assert DownloadCount.objects.filter(project=project, category="python_minor").count() == 4
    svg = Template("{% load supply %}{% adoption_chart project %}").render(Context({"project": project}))
    assert svg.count("<polyline") == 2
    # 3.12 went from 20 % to 50 % of the downloads: y = 200 - share * 200.
    assert 'points="0.0,160.0 600.0,100.0"' in svg
    assert "Python 3.12 50.0%" in svg


def test_an_unreachable_vulnerability_service_is_a_transient_error_that_says_so():
    with pytest.raises(osv.TransientError, match="could not be reached"):
        osv.query_batch("http://127.0.0.1:9", ["pkg:pypi/requests@2.0.0"], policy=RetryPolicy(attempts=2, backoff=0.01))


def test_a_failed_check_is_shown_with_its_reason_on_the_summary_page(project, sandbox, admin_client):
    release = ReleaseFactory(project=project, version="1.0.0")
    deployment = DeploymentFactory(release=release, environment=sandbox, outcome=Deployment.Outcome.FAILED)
    check_record(deployment, checks.README_RENDERS, passed=False, detail="line 4: Unknown | directive", seconds=0.01)

    page = admin_client.get(f"/deployments/{deployment.pk}/summary/").content.decode()
    markdown = admin_client.get(f"/deployments/{deployment.pk}/summary.md").content.decode()

    assert "FAILED" in page and "line 4: Unknown | directive" in page
    assert "| README renders | FAILED | line 4: Unknown \\| directive |" in markdown
    assert CheckResult.objects.get(deployment=deployment).passed is False


def test_supply_pages_need_a_signed_in_user_and_answer_404_for_unknown_rows(client, admin_client):
    assert client.get("/projects/nothing/releases/1.0/sbom/").status_code == 302
    assert client.get("/deployments/1/summary.md").status_code == 302
    assert admin_client.get("/projects/nothing/releases/1.0/sbom/").status_code == 404
    assert admin_client.get("/projects/nothing/releases/1.0/sbom.json").status_code == 404
    assert admin_client.get("/deployments/999999/summary/").status_code == 404


def test_a_paged_batch_answer_is_followed_to_its_last_page(osv_clean):
    for n in range(5):
        osv_clean.add(f"GHSA-page-{n}", "tiny-dep", "1.0")
    osv_clean.add("GHSA-other", "other", "2.0")
    osv_clean.page_size = 2

    found = osv.query_batch(settings.OSV_API_URL, ["pkg:pypi/tiny-dep@1.0", "pkg:pypi/clean@1.0", "pkg:pypi/other@2.0"])

    assert found == [[f"GHSA-page-{n}" for n in range(5)], [], ["GHSA-other"]]
    assert sum(1 for method, path, _ in osv_clean.requests if path == "/v1/querybatch") == 3
