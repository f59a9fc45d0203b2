"""Django's admin, on a site that asks for a verified second factor
(``releases.admin_site``); named in INSTALLED_APPS instead of django.contrib.admin."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    default_site = "releases.admin_site.ConsoleAdminSite"
