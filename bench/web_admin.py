"""The WSGI application bench.web serves: the console, plus admin pages for
the history models that have none yet, so that the benchmark has pages to
measure before the console's own pages exist."""

from __future__ import annotations

import os

from django.contrib import admin
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
application = get_wsgi_application()

from releases.models import Deployment, Job, JobLogLine, Release  # noqa: E402

STAND_INS: dict[type, dict[str, object]] = {
    Release: {
        "list_display": ["project", "version", "build_state", "created_at"],
        "list_filter": ["build_state", "project"],
        "list_select_related": ["project"],
        "raw_id_fields": ["created_by"],
    },
    Deployment: {
        "list_display": ["release", "environment", "status", "created_at", "finished_at"],
        "list_filter": ["status", "environment"],
        "list_select_related": ["release__project", "environment"],
        "raw_id_fields": ["release", "requested_by"],
    },
    Job: {
        "list_display": ["kind", "release", "state", "outcome", "created_at"],
        "list_filter": ["kind", "state"],
        "list_select_related": ["release__project"],
        "raw_id_fields": ["release", "deployment"],
    },
    JobLogLine: {
        "list_display": ["number", "created_at", "text"],
        "ordering": ["-number"],
        "list_per_page": 200,
        "show_full_result_count": False,
        "raw_id_fields": ["job"],
    },
}
for model, options in STAND_INS.items():
    if not admin.site.is_registered(model):
        admin.site.register(model, type(f"{model.__name__}BenchAdmin", (admin.ModelAdmin,), options))
