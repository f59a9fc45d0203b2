"""Where built artifacts are stored: the ``STORAGES["artifacts"]`` entry.

``ARTIFACT_STORAGE=local`` (the default) keeps them in a folder on this
host (``ARTIFACT_ROOT``); ``ARTIFACT_STORAGE=s3`` in an S3 compatible bucket
(AWS S3, MinIO, Ceph...) through django-storages, so that workers on several
hosts share the very same bytes. docs/deploy.md says how to set one up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from console.env import ImproperEnvironment, env_choice, env_int, env_str, env_url

LOCAL = "local"
S3 = "s3"


def artifact_storage(var_dir: Path) -> dict[str, Any]:
    """The storage entry for artifacts, from the environment; fails loudly on bad values."""
    if env_choice("ARTIFACT_STORAGE", LOCAL, {LOCAL, S3}) == S3:
        return _s3()
    root = Path(env_str("ARTIFACT_ROOT", str(var_dir / "artifacts")))
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Read-only files: nothing in the console opens a stored artifact for writing.
        "OPTIONS": {"location": str(root), "file_permissions_mode": 0o444},
    }


def _s3() -> dict[str, Any]:
    # Imported only when a bucket is configured: botocore takes a twentieth
    # of a second to import, in every process and every command that loads
    # the settings. Not a cycle: settings import nothing of the console.
    from botocore.config import Config  # noqa: PLC0415

    bucket = env_str("ARTIFACT_S3_BUCKET").strip()
    if not bucket:
        raise ImproperEnvironment("ARTIFACT_S3_BUCKET must be set when ARTIFACT_STORAGE=s3")
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "endpoint_url": env_url("ARTIFACT_S3_ENDPOINT_URL") or None,
        "region_name": env_str("ARTIFACT_S3_REGION").strip() or None,
        "location": env_str("ARTIFACT_S3_PREFIX").strip().strip("/"),
        # MinIO and most self-hosted stores want path-style addresses
        # (http://host/bucket/key); AWS picks by itself.
        "addressing_style": _addressing_style(),
        # Objects stay private to the bucket's owner, and a name that exists
        # is never replaced by django-storages' own save() either.
        "default_acl": None,
        "file_overwrite": False,
        "querystring_auth": True,
        "querystring_expire": 300,
        "signature_version": "s3v4",
        "client_config": Config(
            connect_timeout=env_int("ARTIFACT_S3_CONNECT_TIMEOUT", 5, minimum=1),
            read_timeout=env_int("ARTIFACT_S3_READ_TIMEOUT", 60, minimum=1),
            # Reference: https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html
            retries={"mode": "standard", "max_attempts": env_int("ARTIFACT_S3_ATTEMPTS", 4, minimum=1)},
        ),
    }
    options.update(_credentials())
    # django-storages' S3Storage, with the artifact client's bucket backend.
    return {"BACKEND": "releases.clients.artifact_bucket.BucketStorage", "OPTIONS": options}


def _addressing_style() -> str | None:
    style = env_choice("ARTIFACT_S3_ADDRESSING_STYLE", "auto", {"auto", "path", "virtual"})
    return None if style == "auto" else style


def _credentials() -> dict[str, str]:
    """The bucket's access key, or nothing: boto3 then finds its own (the
    ``AWS_*`` variables, a profile, an instance or task role).

    The names hold KEY and SECRET, so Django's error pages show them as
    stars; nothing in the console logs them.
    """
    key_id = env_str("ARTIFACT_S3_ACCESS_KEY_ID").strip()
    secret = env_str("ARTIFACT_S3_SECRET_ACCESS_KEY").strip()
    if bool(key_id) != bool(secret):
        raise ImproperEnvironment("ARTIFACT_S3_ACCESS_KEY_ID and ARTIFACT_S3_SECRET_ACCESS_KEY must be set together")
    return {"access_key": key_id, "secret_key": secret} if key_id else {}
