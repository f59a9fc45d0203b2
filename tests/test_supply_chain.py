"""SBOMs, vulnerability scans and post-publication checks against real
services: a Celery worker, devpi, uv and cyclonedx-py; OSV is a loopback
stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from django.core.exceptions import ValidationError

from releases.models import (
    Approval,
    BlockSeverity,
    CheckResult,
    Deployment,
    Environment,
    Job,
    Release,
    Sbom,
    Severity,
    VulnerabilityFinding,
)
from releases.selectors.supply import sbom_components, sbom_diff
from releases.services.approvals import approval_give, artifact_digests
from releases.services.deployments import deployment_request
from releases.services.releases import release_create
from releases.services.scans import scan_pending
from releases.steps import checks
from tests.conftest import index_environment, wait_built, wait_final, wait_for
from tests.support.devpi import DevpiServer, IndexAccount
from tests.support.people import make_user
from tests.support.sample import SampleRepo, build_wheel


def publish_dependency(devpi: DevpiServer, account: IndexAccount, root: Path, name: str, version: str) -> None:
    """A tiny package on the same index, so that every install stays offline."""
    repo = SampleRepo(root / f"{name}-{version}", name=name)
    repo.commit_version(version)
    devpi.upload_raw(account, build_wheel(repo, root / "wheels"))


def ship(project, sample_repo: SampleRepo, environment: Environment, version: str, dependencies: list[str]) -> Release:
    sample_repo.commit_version(version, tag=f"v{version}", dependencies=dependencies)
    release = wait_built(release_create(project=project, version=version, ref=f"v{version}", actor=None))
    assert release.is_built, release.reason
    deployment = wait_final(deployment_request(release=release, environment=environment, actor=None))
    assert deployment.outcome == Deployment.Outcome.SUCCEEDED, deployment.reason
    return release


def wait_scanned(release: Release) -> Sbom:
    return wait_for(lambda: Sbom.objects.filter(release=release, scanned_at__isnull=False).first())  # type: ignore[return-value]


def test_verify_makes_an_sbom_of_the_package_and_its_dependencies_and_diffs_it_with_the_previous_release(
    worker, project, sandbox, devpi, index_account, sample_repo, tmp_path, osv_clean, admin_client
):
    for name, version in [("tiny-dep", "1.0"), ("tiny-dep", "2.0"), ("tiny-gone", "1.0"), ("tiny-extra", "1.0")]:
        publish_dependency(devpi, index_account, tmp_path, name, version)
    osv_clean.add("GHSA-aaaa-bbbb-cccc", "tiny-dep", "2.0", severity="HIGH", fixed="2.1", summary="tiny-dep leaks")

    first = ship(project, sample_repo, sandbox, "2.0.0", ["tiny-dep==1.0", "tiny-gone"])
    second = ship(project, sample_repo, sandbox, "2.1.0", ["tiny-dep==2.0", "tiny-extra"])

    sbom = Sbom.objects.get(release=first)
    assert sbom.document["bomFormat"] == "CycloneDX"
    assert sbom.document["specVersion"] == "1.6"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom.document)) is None
    assert {(c.name, c.version) for c in sbom_components(sbom.document)} == {
        ("sample-pkg", "2.0.0"),
        ("tiny-dep", "1.0"),
        ("tiny-gone", "1.0"),
    }
    assert sbom.components == 3
    assert "pkg:pypi/tiny-dep@1.0" in {c.purl for c in sbom_components(sbom.document)}

    diff = sbom_diff(second)
    assert diff.previous == first
    assert [(c.name, c.version) for c in diff.added] == [("tiny-extra", "1.0")]
    assert [(c.name, c.version) for c in diff.removed] == [("tiny-gone", "1.0")]
    assert [(c.name, c.old_version, c.new_version) for c in diff.changed] == [("tiny-dep", "1.0", "2.0")]

    # The scan follows the SBOM: the stand-in knows one vulnerability of tiny-dep 2.0.
    wait_scanned(first)
    wait_scanned(second)
    assert not VulnerabilityFinding.objects.filter(release=first).exists()
    finding = VulnerabilityFinding.objects.get(release=second)
    assert (finding.vuln_id, finding.package, finding.version) == ("GHSA-aaaa-bbbb-cccc", "tiny-dep", "2.0")
    assert finding.severity == Severity.HIGH
    assert finding.fixed_versions == ["2.1"]

    page = admin_client.get(f"/projects/{second.project.name}/releases/{second.version}/sbom/").content.decode()
    for text in ["tiny-extra", "tiny-gone", "pkg:pypi/tiny-dep@2.0", "GHSA-aaaa-bbbb-cccc", "tiny-dep leaks", "2.1"]:
        assert text in page
    download = admin_client.get(f"/projects/{second.project.name}/releases/{second.version}/sbom.json")
    assert download["Content-Disposition"] == 'attachment; filename="sample-pkg-2.1.0.cdx.json"'
    assert json.loads(download.content) == Sbom.objects.get(release=second).document

    # Every deployment records its post-publication checks, all passed here.
    deployment = Deployment.objects.get(release=second)
    results = {c.name: c for c in CheckResult.objects.filter(deployment=deployment)}
    assert set(results) == {
        checks.FILES_ON_INDEX,
        checks.INSTALLS,
        checks.DEPENDENCIES_RESOLVE,
        checks.README_RENDERS,
        checks.METADATA_MATCHES,
    }
    assert all(r.passed for r in results.values()), {n: r.detail for n, r in results.items()}
    assert "text/markdown" in results[checks.README_RENDERS].detail
    # The deployment's permanent summary keeps them too.
    assert deployment.summary["checks"][checks.METADATA_MATCHES]["passed"] is True
    assert deployment.summary["sbom_components"] == 3

    summary = admin_client.get(f"/deployments/{deployment.pk}/summary/").content.decode()
    markdown = admin_client.get(f"/deployments/{deployment.pk}/summary.md").content.decode()
    for text in (summary, markdown):
        for artifact in second.artifacts.all():
            assert artifact.filename in text
            assert artifact.sha256 in text
        assert checks.METADATA_MATCHES in text
        assert "GHSA-aaaa-bbbb-cccc" in text
        assert "tiny-extra" in text
        assert index_account.simple_url in text
    assert "| metadata matches | passed |" in markdown
    assert "- Requested by: system" in markdown


def test_an_unreachable_scan_is_retried_and_the_policy_blocks_a_production_push(
    worker, project, sandbox, devpi, index_account, sample_repo, tmp_path, osv_clean, django_user_model
):
    publish_dependency(devpi, index_account, tmp_path, "tiny-dep", "2.0")
    osv_clean.add("GHSA-cccc-dddd-eeee", "tiny-dep", "2.0", severity="CRITICAL", fixed="2.1")
    production_account = devpi.new_index()
    production = index_environment(
        production_account, "pypi", "PyPI", fallback_index_url=index_account.simple_url, after="test-pypi"
    )
    Environment.objects.filter(pk=production.pk).update(block_severity=BlockSeverity.HIGH)
    production.refresh_from_db()

    osv_clean.failing = True
    release = ship(project, sample_repo, sandbox, "2.0.0", ["tiny-dep==2.0"])

    # The package is published all the same; the scan says why it is not done.
    sbom = Sbom.objects.get(release=release)
    assert sbom.scanned_at is None
    assert "answered 503" in sbom.scan_error and "will be retried" in sbom.scan_error
    with pytest.raises(ValidationError, match="has not been scanned yet"):
        deployment_request(release=release, environment=production, actor=None)

    # The beat's retry is a scan job; while the service is down it fails saying so.
    assert scan_pending() == [release.pk]
    scan = wait_for(lambda: Job.objects.filter(release=release, kind=Job.Kind.SCAN, state="finished").first())
    assert scan.outcome == Job.Outcome.FAILED
    assert "answered 503" in scan.reason and "will be retried" in scan.reason

    osv_clean.failing = False
    assert scan_pending() == [release.pk]
    retried = wait_for(
        lambda: Job.objects.filter(release=release, kind=Job.Kind.SCAN, state="finished").exclude(pk=scan.pk).first()
    )
    assert retried.outcome == Job.Outcome.SUCCEEDED, retried.reason
    assert Sbom.objects.get(release=release).scanned_at is not None
    with pytest.raises(ValidationError, match="GHSA-cccc-dddd-eeee"):
        deployment_request(release=release, environment=production, actor=None)
    assert not Deployment.objects.filter(environment=production).exists()

    # Checked again inside the task: a push requested and approved while the
    # policy was off is refused once the policy is on, before any upload.
    Environment.objects.filter(pk=production.pk).update(block_severity=BlockSeverity.NONE, required_approvals=1)
    production.refresh_from_db()
    requester = make_user("requester", "releaser")
    approver = make_user("approver", approver=True)
    deployment = deployment_request(release=release, environment=production, actor=requester)
    assert deployment.state == Deployment.State.PENDING_APPROVAL
    Environment.objects.filter(pk=production.pk).update(block_severity=BlockSeverity.CRITICAL)
    approval_give(
        deployment,
        approver,
        Approval.Decision.APPROVE,
        digests_seen=artifact_digests(deployment),
        second_factor_verified=True,
    )

    deployment = wait_final(deployment)
    assert deployment.outcome == Deployment.Outcome.FAILED
    assert "Not uploaded" in deployment.reason and "GHSA-cccc-dddd-eeee" in deployment.reason
    assert devpi.upload_requests(production_account) == 0


def test_a_project_page_that_does_not_answer_fails_the_deployment_with_the_check_named(
    worker, project, sandbox, devpi, index_account, osv_clean, admin_client
):
    # devpi answers each version's page at /<user>/<index>/<name>/<version>.
    good = f"{devpi.url}/{index_account.user}/dev/{{name}}/{{version}}"
    Environment.objects.filter(pk=sandbox.pk).update(project_url_template=good)
    sandbox.refresh_from_db()
    release = wait_built(release_create(project=project, version="1.0.0", ref="v1.0.0", actor=None))
    first = wait_final(deployment_request(release=release, environment=sandbox, actor=None))
    assert first.outcome == Deployment.Outcome.SUCCEEDED, first.reason
    page_check = CheckResult.objects.get(deployment=first, name=checks.PROJECT_PAGE)
    assert page_check.passed and "answered 200" in page_check.detail

    Environment.objects.filter(pk=sandbox.pk).update(project_url_template=good + "/no-such-page")
    second = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert second.outcome == Deployment.Outcome.FAILED
    assert "Post-publication checks failed. project page answers:" in second.reason
    assert "answered 404" in second.reason
    failed = CheckResult.objects.get(deployment=second, name=checks.PROJECT_PAGE)
    assert not failed.passed
    assert CheckResult.objects.get(deployment=second, name=checks.INSTALLS).passed
    markdown = admin_client.get(f"/deployments/{second.pk}/summary.md").content.decode()
    assert "| project page answers | FAILED |" in markdown
    # The SBOM was made once, by the first verify.
    assert Sbom.objects.filter(release=release).count() == 1


def test_a_release_that_does_not_import_fails_verify_and_stores_no_sbom(worker, project, sample_repo, sandbox):
    # The SBOM starts as soon as the install ends, beside the import; an
    # import that fails throws its result away.
    sample_repo.commit_version("1.3.0", tag="v1.3.0", body="raise ImportError('needs a config file')\n")
    release = wait_built(release_create(project=project, version="1.3.0", ref="v1.3.0", actor=None))
    assert release.is_built, release.reason

    deployment = wait_final(deployment_request(release=release, environment=sandbox, actor=None))

    assert deployment.outcome == Deployment.Outcome.FAILED
    assert deployment.reason.startswith("Verify failed:")
    assert "ImportError: needs a config file" in deployment.reason
    assert not Sbom.objects.filter(release=release).exists()
    assert not CheckResult.objects.get(deployment=deployment, name=checks.INSTALLS).passed
    verify = Job.objects.get(deployment=deployment, kind=Job.Kind.VERIFY)
    assert verify.state == Job.State.FINISHED
    lines = list(verify.lines.order_by("number").values_list("text", flat=True))
    started = lines.index("==> making the SBOM (CycloneDX 1.6) beside the import and the checks")
    assert started < lines.index("==> importing sample_pkg")
    assert any(line.startswith("[sbom] $ cyclonedx-py environment") for line in lines)
