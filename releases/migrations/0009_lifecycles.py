"""One lifecycle for everything that moves: where it is (``state``) apart
from how it ended (``outcome``), and ``reason`` for why, on deployments,
release builds, deployment files, jobs and webhook deliveries. Webhook
deliveries are worked by jobs (``Job.delivery``).

The new columns are added and filled here; the old ones go in 0010, so that
PostgreSQL does not alter tables with pending trigger events in the
transaction that filled them.
"""

import django.db.models.deletion
from django.db import migrations, models

DEPLOYMENT = {
    "pending_approval": ("pending_approval", ""),
    "approved": ("approved", ""),
    "queued": ("queued", ""),
    "uploading": ("uploading", ""),
    "verifying": ("verifying", ""),
    "succeeded": ("finished", "succeeded"),
    "failed": ("finished", "failed"),
    "rejected": ("finished", "rejected"),
    "cancelled": ("finished", "cancelled"),
    "expired": ("finished", "expired"),
}
RELEASE = {
    "pending": ("queued", ""),
    "building": ("building", ""),
    "built": ("finished", "built"),
    "failed": ("finished", "failed"),
}
FILE = {
    "pending": ("pending", ""),
    "uploaded": ("on_index", "uploaded"),
    "skipped": ("on_index", "skipped"),
    "conflict": ("stopped", "conflict"),
    "failed": ("stopped", "failed"),
    # How a verified file reached the index was not kept before.
    "verified": ("verified", ""),
}


def fill(apps, schema_editor):
    Deployment = apps.get_model("releases", "Deployment")
    Release = apps.get_model("releases", "Release")
    DeploymentFile = apps.get_model("releases", "DeploymentFile")
    WebhookDelivery = apps.get_model("releases", "WebhookDelivery")
    for old, (state, outcome) in DEPLOYMENT.items():
        Deployment.objects.filter(status=old).update(state=state, outcome=outcome)
    for old, (state, outcome) in RELEASE.items():
        Release.objects.filter(build_state=old).update(state=state, outcome=outcome)
    for old, (state, outcome) in FILE.items():
        DeploymentFile.objects.filter(state=old).update(state=state, outcome=outcome)
    WebhookDelivery.objects.filter(outcome="queued").update(state="queued", outcome="")
    WebhookDelivery.objects.exclude(outcome="").update(state="finished")


class Migration(migrations.Migration):

    dependencies = [
        ("releases", "0008_deployment_project_required"),
    ]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending_approval", "Pending approval"),
                    ("approved", "Approved"),
                    ("queued", "Queued"),
                    ("uploading", "Uploading"),
                    ("verifying", "Verifying"),
                    ("finished", "Finished"),
                ],
                db_index=True,
                default="finished",
                max_length=20,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="deployment",
            name="outcome",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "—"),
                    ("succeeded", "Succeeded"),
                    ("failed", "Failed"),
                    ("rejected", "Rejected"),
                    ("cancelled", "Cancelled"),
                    ("expired", "Expired"),
                ],
                default="",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="deployment",
            name="verified_modules",
            field=models.JSONField(blank=True, default=list, help_text="The modules verify imported."),
        ),
        migrations.AlterField(
            model_name="deployment",
            name="summary",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="What shipped (DeploymentSummary), written once when it succeeds.",
            ),
        ),
        migrations.AddField(
            model_name="release",
            name="state",
            field=models.CharField(
                choices=[("queued", "Waiting to build"), ("building", "Building"), ("finished", "Finished")],
                default="queued",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="release",
            name="outcome",
            field=models.CharField(
                blank=True,
                choices=[("", "—"), ("built", "Built"), ("failed", "Build failed")],
                default="",
                max_length=10,
            ),
        ),
        migrations.RenameField(model_name="release", old_name="build_error", new_name="reason"),
        migrations.AlterField(
            model_name="release",
            name="reason",
            field=models.TextField(blank=True, help_text="Why the build failed."),
        ),
        migrations.RenameField(model_name="release", old_name="build_warnings", new_name="warnings"),
        migrations.AlterField(
            model_name="release",
            name="warnings",
            field=models.JSONField(blank=True, default=list, help_text="What twine check warned of."),
        ),
        migrations.AddField(
            model_name="deploymentfile",
            name="outcome",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "—"),
                    ("uploaded", "Uploaded"),
                    ("skipped", "Already on the index (same sha256)"),
                    ("conflict", "Different file on the index"),
                    ("failed", "Failed"),
                ],
                default="",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="deploymentfile",
            name="state",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("on_index", "On the index"),
                    ("verified", "Installed and checked"),
                    ("stopped", "Not sent"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
        migrations.RenameField(model_name="deploymentfile", old_name="message", new_name="reason"),
        migrations.AddField(
            model_name="webhookdelivery",
            name="state",
            field=models.CharField(
                choices=[("queued", "Accepted, work queued"), ("finished", "Finished")],
                default="finished",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="outcome",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "—"),
                    ("done", "Accepted, done"),
                    ("ignored", "Accepted, ignored"),
                    ("duplicate", "Delivery seen before"),
                    ("refused", "Refused"),
                    ("failed", "Accepted, the work failed"),
                ],
                default="",
                max_length=10,
            ),
        ),
        migrations.RenameField(model_name="webhookdelivery", old_name="error", new_name="reason"),
        migrations.RenameField(model_name="job", old_name="error", new_name="reason"),
        migrations.AlterField(
            model_name="job",
            name="release",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="jobs",
                to="releases.release",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="delivery",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="jobs",
                to="releases.webhookdelivery",
            ),
        ),
        migrations.AlterField(
            model_name="job",
            name="kind",
            field=models.CharField(
                choices=[
                    ("build", "Build"),
                    ("upload", "Upload"),
                    ("verify", "Verify"),
                    ("dispatch", "Dispatch workflow"),
                    ("track", "Track workflow run"),
                    ("scan", "Scan"),
                    ("webhook", "Webhook delivery"),
                ],
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('release.created', 'Release created'), ('release.building', 'Build started'), ('release.built', 'Release built'), ('release.failed', 'Build failed'), ('release.sbom_recorded', 'SBOM recorded'), ('release.scanned', 'Vulnerability scan'), ('deployment.requested', 'Deployment requested'), ('deployment.approved', 'Deployment approved'), ('deployment.queued', 'Deployment queued'), ('deployment.uploading', 'Upload started'), ('deployment.verifying', 'Verification started'), ('deployment.succeeded', 'Deployment succeeded'), ('deployment.failed', 'Deployment failed'), ('deployment.rejected', 'Deployment rejected'), ('deployment.cancelled', 'Deployment cancelled'), ('deployment.expired', 'Request expired'), ('file.on_index', 'File on the index'), ('file.verified', 'File installed and checked'), ('file.stopped', 'File not sent'), ('job.running', 'Job started'), ('job.queued', 'Job queued again'), ('job.succeeded', 'Job succeeded'), ('job.failed', 'Job failed'), ('job.cancelled', 'Job cancelled'), ('webhook.done', 'Webhook processed'), ('webhook.ignored', 'Webhook ignored'), ('webhook.failed', 'Webhook work failed'), ('approval.given', 'Approval given'), ('approval.rejected', 'Push rejected'), ('approval.refused', 'Decision refused'), ('approval.bypassed', 'Approvals bypassed'), ('project.created', 'Project created'), ('project.changed', 'Project changed'), ('environment.created', 'Environment created'), ('environment.changed', 'Environment changed'), ('credential.created', 'Credential created'), ('credential.changed', 'Credential changed'), ('credential.replaced', 'Credential replaced'), ('credentials.key_rotated', 'Key ring rotated'), ('role.assigned', 'Role assigned'), ('role.removed', 'Role removed'), ('second_factor.enrolled', 'Second factor enrolled'), ('second_factor.failed', 'Second factor failed'), ('second_factor.reset', 'Second factor reset'), ('second_factor.device_removed', 'Second factor device removed'), ('auth.login_failed', 'Sign-in failed'), ('workflow.dispatched', 'Workflow dispatched'), ('workflow.completed', 'Workflow run completed')], db_index=True, max_length=60),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
