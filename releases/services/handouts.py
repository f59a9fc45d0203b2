"""Trusted Publishing of the approved files.

A project that publishes through its GitHub workflow (PyPI's Trusted
Publishing, with attestations) gets, in the dispatch's inputs, the sha256
of every approved file and a link to download exactly those files from the
console. The workflow (``docs/publish.yml``, its step
``docs/fetch_approved.py``) checks each file against the digests before it
publishes anything; the verify afterwards checks that the index serves
exactly those digests. The link is:

* signed (``django.core.signing``, a salt of its own): no console token is
  stored in GitHub, and no one can make a link the console did not;
* deployment-scoped: it names one deployment and serves its files only
  while that deployment is publishing, with its approvals still valid;
* short-lived: ``PUBLISH_LINK_MAX_AGE`` seconds after the dispatch;
* single-use: each file is handed out once. A workflow run started again
  by hand gets nothing: publish again from the console.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from releases.models import AuditAction, Deployment, DeploymentFile
from releases.services.approvals import approvals_problem
from releases.services.audit import audit_record

SALT = "releases.handouts.v1"


class HandoutRefused(Exception):
    """A download the link does not allow; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def handout_inputs(deployment: Deployment) -> dict[str, str]:
    """What the dispatch passes the workflow: ``files``, one ``sha256  filename``
    line per approved file (the format ``sha256sum --check`` reads), sdist
    first; and ``files_url``, the signed link they are downloaded from."""
    token = signing.dumps({"deployment": deployment.pk}, salt=SALT)
    url = settings.CONSOLE_URL.rstrip("/") + reverse("releases:handout_files", kwargs={"token": token})
    records = deployment.files.select_related("artifact").order_by("artifact__kind", "artifact__filename")
    return {
        "files": "\n".join(f"{r.artifact.sha256}  {r.artifact.filename}" for r in records),
        "files_url": url,
    }


def handout_claim(token: str, filename: str, *, client: str = "") -> DeploymentFile:
    """The deployment file ``filename`` that the link ``token`` hands out, once.

    1. The signature and its age: another link, or an expired one, is refused.
    2. The deployment publishes through its workflow, is publishing now, and
       its approvals still hold for these files.
    3. The file is one of the deployment's, not handed out before (a
       conditional update: two downloads at once get it once). The hand-out
       is audited, with the address it went to.
    """
    try:
        value = signing.loads(token, salt=SALT, max_age=settings.PUBLISH_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise HandoutRefused(410, "This link has expired; publish again from the console.") from None
    except signing.BadSignature:
        raise HandoutRefused(403, "This is not a link the console made.") from None
    deployment_id = value.get("deployment") if isinstance(value, dict) else None
    deployment = (
        Deployment.objects.select_related("release__project", "environment").filter(pk=deployment_id).first()
        if isinstance(deployment_id, int)
        else None
    )
    if deployment is None or not deployment.release.project.publishes_through_workflow:
        raise HandoutRefused(404, "There is no such deployment to publish.")
    if deployment.state != Deployment.State.UPLOADING:
        raise HandoutRefused(
            409,
            f"Deployment #{deployment.pk} is {deployment.label.lower()}; its files are handed out only while it publishes.",
        )
    problem = approvals_problem(deployment)
    if problem:
        raise HandoutRefused(403, f"Not handed out: {problem}")
    record = deployment.files.select_related("artifact").filter(artifact__filename=filename).first()
    if record is None:
        raise HandoutRefused(404, f"{filename} is not one of the files approved for deployment #{deployment.pk}.")
    with transaction.atomic():
        claimed = DeploymentFile.objects.filter(pk=record.pk, handed_out_at__isnull=True).update(
            handed_out_at=timezone.now()
        )
        if not claimed:
            raise HandoutRefused(
                410, f"{filename} was downloaded once already for deployment #{deployment.pk}; publish again."
            )
        audit_record(
            actor=None,
            action=AuditAction.FILE_HANDED_OUT,
            target=deployment,
            release=deployment.release,
            data={"filename": filename, "sha256": record.artifact.sha256, "to": client[:100]},
        )
    record.refresh_from_db()
    return record
