from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The one import Django asks to be made late: the signal handlers use
        # the models, which exist only once the app registry is ready.
        from releases import signals  # noqa: PLC0415

        post_migrate.connect(signals.sync_roles_after_migrate, sender=self, dispatch_uid="releases.roles_sync")
