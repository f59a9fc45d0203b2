"""The old status columns go, with the constraints and indexes built on
them; their equivalents on ``state`` and ``outcome`` take their place."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("releases", "0009_lifecycles"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="deployment", name="deployment_one_active_per_environment"),
        migrations.RemoveIndex(model_name="deployment", name="deployment_board_live"),
        migrations.RemoveIndex(model_name="deployment", name="releases_de_environ_15b5a0_idx"),
        migrations.RemoveField(model_name="deployment", name="status"),
        migrations.RemoveField(model_name="release", name="build_state"),
        migrations.AddConstraint(
            model_name="deployment",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state", "finished"), _negated=True),
                fields=("release", "environment"),
                name="deployment_one_active_per_environment",
            ),
        ),
        migrations.AddConstraint(
            model_name="deployment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("outcome__in", ["succeeded", "failed", "rejected", "cancelled", "expired"]), ("state", "finished")),
                    models.Q(models.Q(("state", "finished"), _negated=True), ("outcome", "")),
                    _connector="OR",
                ),
                name="deployment_outcome_when_finished",
            ),
        ),
        migrations.AddConstraint(
            model_name="release",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("outcome__in", ["built", "failed"]), ("state", "finished")),
                    models.Q(models.Q(("state", "finished"), _negated=True), ("outcome", "")),
                    _connector="OR",
                ),
                name="release_outcome_when_finished",
            ),
        ),
        migrations.AddIndex(
            model_name="deployment",
            index=models.Index(fields=["environment", "state", "-created_at"], name="deployment_environment_state"),
        ),
        migrations.AddIndex(
            model_name="deployment",
            index=models.Index(
                condition=models.Q(("outcome", "succeeded")),
                fields=["project", "environment", "-id"],
                name="deployment_board_live",
            ),
        ),
    ]
