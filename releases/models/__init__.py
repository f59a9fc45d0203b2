"""The release console's data model (DESIGN.md, "Domain")."""

from __future__ import annotations

from releases.models.access import FailureTally
from releases.models.audit import AuditAction, AuditChainHead, AuditEvent
from releases.models.changes import DECIDE_CHANGE_PERMISSION, ChangeRequest
from releases.models.deployments import (
    APPROVE_PERMISSION,
    PUBLISH_PERMISSION,
    REQUEST_PERMISSION,
    Approval,
    Deployment,
    DeploymentFile,
    Destination,
    FileProvenance,
    ShippedSummary,
)
from releases.models.github import WebhookDelivery, WorkflowRun
from releases.models.jobs import Job, JobLogLine, Worker
from releases.models.projects import Credential, Environment, Project
from releases.models.releases import Artifact, Release
from releases.models.severity import BlockSeverity, Severity
from releases.models.supply import CheckResult, DownloadCount, Sbom, VulnerabilityAlert, VulnerabilityFinding

__all__ = [
    "APPROVE_PERMISSION",
    "DECIDE_CHANGE_PERMISSION",
    "PUBLISH_PERMISSION",
    "REQUEST_PERMISSION",
    "Approval",
    "Artifact",
    "AuditAction",
    "AuditChainHead",
    "AuditEvent",
    "BlockSeverity",
    "ChangeRequest",
    "CheckResult",
    "Credential",
    "Deployment",
    "DeploymentFile",
    "Destination",
    "DownloadCount",
    "Environment",
    "FailureTally",
    "FileProvenance",
    "Job",
    "JobLogLine",
    "Project",
    "Release",
    "Sbom",
    "Severity",
    "ShippedSummary",
    "VulnerabilityAlert",
    "VulnerabilityFinding",
    "WebhookDelivery",
    "Worker",
    "WorkflowRun",
]
