"""Who may sign in: anyone Django's ModelBackend lets in, but the service account."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend

from releases.actors import is_service_account


class ConsoleBackend(ModelBackend):
    """Django's own backend, refusing the service account (CONSOLE_SERVICE_ACCOUNT)
    whatever password an admin may have set on it: whoever could sign in as
    it could ask for a push as "nobody" and approve it as themselves."""

    def user_can_authenticate(self, user: Any) -> bool:
        return bool(super().user_can_authenticate(user)) and not is_service_account(user)
