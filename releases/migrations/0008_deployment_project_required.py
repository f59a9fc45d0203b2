import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("releases", "0007_deployment_project"),
    ]

    operations = [
        migrations.AlterField(
            model_name="deployment",
            name="project",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="releases.project",
            ),
        ),
        migrations.AddIndex(
            model_name="deployment",
            index=models.Index(fields=["project", "environment", "-id"], name="deployment_board_latest"),
        ),
        migrations.AddIndex(
            model_name="deployment",
            index=models.Index(
                condition=models.Q(("status", "succeeded")),
                fields=["project", "environment", "-id"],
                name="deployment_board_live",
            ),
        ),
    ]
