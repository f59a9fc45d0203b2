"""Re-encrypt every credential under the first key of CONSOLE_TOKEN_KEYS.

Key rotation, in three steps:

1. Generate a key (``python -c "from cryptography.fernet import Fernet;
   print(Fernet.generate_key().decode())"``) and put it first in
   ``CONSOLE_TOKEN_KEYS``, keeping the old key after it; restart the web
   server and workers. New secrets are encrypted with the new key, old
   ones still decrypt with the old.
2. Run ``python manage.py credentials_rotate_key``: every credential is
   re-encrypted under the new key, in one transaction.
3. Remove the old key from ``CONSOLE_TOKEN_KEYS`` and restart again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from releases.management.commands._base import ConsoleCommand
from releases.services.credentials import CredentialError, credentials_rotate_key


class Command(ConsoleCommand):
    help = "Re-encrypt every stored credential under the first key of CONSOLE_TOKEN_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = credentials_rotate_key()
        except CredentialError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Re-encrypted {count} credentials under the first key of CONSOLE_TOKEN_KEYS. "
            "Once every process runs with the new key ring, remove the old key from it."
        )
