from __future__ import annotations

from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from releases import signals

        post_migrate.connect(signals.sync_roles_after_migrate, sender=self, dispatch_uid="releases.roles_sync")
