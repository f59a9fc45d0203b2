"""Each deployment keeps its release's project, for the dashboard's index.

The column is added empty, filled from the releases, then (0008) made
required and indexed."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def fill_project(apps, schema_editor):
    Deployment = apps.get_model("releases", "Deployment")
    Release = apps.get_model("releases", "Release")
    Deployment.objects.filter(project__isnull=True).update(
        project_id=Subquery(Release.objects.filter(pk=OuterRef("release_id")).values("project_id")[:1])
    )


class Migration(migrations.Migration):

    dependencies = [
        ("releases", "0006_log_line_job_without_constraint"),
    ]

    operations = [
        migrations.AddField(
            model_name="deployment",
            name="project",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="releases.project",
            ),
        ),
        migrations.RunPython(fill_project, migrations.RunPython.noop, elidable=True),
    ]
