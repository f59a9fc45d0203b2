# Roles as groups with permissions: viewer, releaser, approver, admin.

from django.db import migrations

MODELS = {
    "releases": {
        "project": "project",
        "environment": "environment",
        "credential": "credential",
        "release": "release",
        "artifact": "artifact",
        "deployment": "deployment",
        "deploymentfile": "deployment file",
        "approval": "approval",
        "job": "job",
        "joblogline": "job log line",
        "auditevent": "audit event",
    },
    "auth": {"user": "user", "group": "group"},
}
CUSTOM = {
    "publish_deployment": "Can publish to an environment that needs no approval",
    "request_deployment": "Can request a push to an environment that needs approval",
    "approve_deployment": "Can approve or reject a push",
}
READ = [
    f"releases.view_{m}"
    for m in (
        "project",
        "environment",
        "release",
        "artifact",
        "deployment",
        "deploymentfile",
        "approval",
        "job",
        "joblogline",
        "auditevent",
    )
]
# A frozen copy of releases.services.roles.ROLE_PERMISSIONS at this point in history.
ROLES = {
    "viewer": READ,
    "releaser": [*READ, "releases.add_release", "releases.publish_deployment", "releases.request_deployment"],
    "approver": [*READ, "releases.approve_deployment"],
    "admin": [
        *READ,
        *[f"releases.{v}_{m}" for v in ("add", "change", "view") for m in ("project", "environment")],
        *[f"releases.{v}_credential" for v in ("add", "change", "view")],
        *[f"auth.{v}_user" for v in ("add", "change", "view")],
        "auth.view_group",
    ],
}


def _permission(apps, app_label, codename):
    """The permission, created here if post_migrate has not made it yet (a fresh database)."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    if codename in CUSTOM:
        model, name = "deployment", CUSTOM[codename]
    else:
        verb, model = codename.split("_", 1)
        name = f"Can {verb} {MODELS[app_label][model]}"
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": name}
    )
    return permission


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for role, permissions in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for dotted in permissions:
            app_label, codename = dotted.split(".")
            group.permissions.add(_permission(apps, app_label, codename))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="deployment",
            options={
                "ordering": ["-created_at", "-id"],
                "permissions": [
                    ("publish_deployment", "Can publish to an environment that needs no approval"),
                    ("request_deployment", "Can request a push to an environment that needs approval"),
                    ("approve_deployment", "Can approve or reject a push"),
                ],
            },
        ),
        migrations.RunPython(create_roles, remove_roles),
    ]
