"""The release console's data model (DESIGN.md, "Domain")."""

from __future__ import annotations

from releases.models.audit import AuditChainHead, AuditEvent
from releases.models.deployments import Approval, Deployment, DeploymentFile
from releases.models.github import WebhookDelivery, WorkflowRun
from releases.models.jobs import Job, JobLogLine
from releases.models.projects import Credential, Environment, Project
from releases.models.releases import Artifact, Release

__all__ = [
    "Approval",
    "Artifact",
    "AuditChainHead",
    "AuditEvent",
    "Credential",
    "Deployment",
    "DeploymentFile",
    "Environment",
    "Job",
    "JobLogLine",
    "Project",
    "Release",
    "WebhookDelivery",
    "WorkflowRun",
]
