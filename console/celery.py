"""The Celery application: workers build, upload, verify and reap.

Settings live in ``console/settings.py`` under the ``CELERY_`` prefix.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
