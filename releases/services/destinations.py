"""Where a push goes (DESIGN.md principle 10): recorded when it is asked
for, shown on the approval page, bound into every approval, and compared
with the environment again right before the first byte leaves.

An approval says "these files, to that index, with that token, under those
rules". If anything of it changes after the request (another upload
address, another index, another credential or token, fewer approvals, the
second factor off), the push stops with every difference named and nothing
is sent; the release is asked for again and approved anew.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from releases.models import Deployment, Destination, Environment, Project
from releases.services.credentials import CredentialError, credential_fingerprint, token_fingerprint

# The words each field is named with when it differs.
LABELS = {
    "environment": "environment",
    "upload_url": "upload URL",
    "index_url": "index URL",
    "credential_id": "credential",
    "credential_username": "credential's user name",
    "credential_fingerprint": "token",
    "required_approvals": "required approvals",
    "require_second_factor": "second-factor rule",
    "publish_mode": "publish mode",
    "workflow_environment": "workflow environment",
    "github_repository": "project's GitHub repository",
    "workflow_file": "project's publishing workflow",
}


def destination_of(environment: Environment, project: Project) -> Destination:
    """Where ``project`` would go on ``environment`` now (the credential is
    decrypted here only to fingerprint it)."""
    credential = environment.credential
    fingerprint = ""
    if credential is not None:
        try:
            fingerprint = credential_fingerprint(credential)
        except CredentialError as exc:
            raise ValidationError(str(exc)) from None
    return {
        "environment": environment.name,
        "upload_url": environment.upload_url,
        "index_url": environment.index_url,
        "credential_id": credential.pk if credential is not None else None,
        "credential_username": credential.username if credential is not None else "",
        "credential_fingerprint": fingerprint,
        "required_approvals": environment.required_approvals,
        "require_second_factor": environment.require_second_factor,
        "publish_mode": project.publish_mode,
        "workflow_environment": environment.workflow_environment,
        # Trusted Publishing: the workflow that receives the approved files.
        "github_repository": project.github_repository if project.publishes_through_workflow else "",
        "workflow_file": project.workflow_file if project.publishes_through_workflow else "",
    }


def destination_differences(recorded: object, now: Destination) -> list[str]:
    """Each way ``now`` differs from what was ``recorded``, in words (values
    shown, but a token only by the start of its fingerprint)."""
    if not isinstance(recorded, dict) or not recorded:
        return ["the deployment records no destination (it was asked for before destinations were bound)"]
    found = []
    for field, label in LABELS.items():
        before, after = recorded.get(field), now.get(field)
        if before == after:
            continue
        if field == "credential_fingerprint":
            found.append(f"the {label} is another one (fingerprint {str(before)[:12]}… then, {str(after)[:12]}… now)")
        else:
            found.append(f"the {label} was {before!r} when approved and is {after!r} now")
    return found


def destination_changes(deployment: Deployment) -> list[str]:
    """How the deployment's environment, as the database holds it now, differs
    from what the request recorded."""
    environment = Environment.objects.select_related("credential").get(pk=deployment.environment_id)
    now = destination_of(environment, deployment.release.project)
    return destination_differences(deployment.destination, now)


def destination_problem(deployment: Deployment) -> str | None:
    """Why ``deployment`` may not go where its environment points now, or None."""
    differences = destination_changes(deployment)
    if not differences:
        return None
    return (
        f"{deployment.environment.title} changed since this push was asked for and approved: "
        + "; ".join(differences)
        + ". Nothing was sent; ask for the push again so that it is approved for where it goes now."
    )


def token_matches(deployment: Deployment, username: str, token: str) -> bool:
    """Whether the token about to be sent is the one recorded with the request."""
    recorded = deployment.destination.get("credential_fingerprint", "") if deployment.destination else ""
    return bool(recorded) and recorded == token_fingerprint(username, token)
