"""Artifact storage in an S3 compatible bucket (releases/clients/artifacts.py
uses it when ``ARTIFACT_STORAGE=s3``): the requests, and what the store's
answers mean.

Apart from artifacts.py so that boto3, botocore and django-storages' S3
backend are imported only where a bucket is configured, not by every
command and process that imports the artifact client: the settings name
``BucketStorage`` as the storage's backend, and Django's storages load it
when the storage is first used.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from botocore import exceptions as botocore_errors
from botocore.exceptions import ClientError
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

from releases.clients.artifacts import (
    CHUNK,
    RANGE_BUFFER,
    ArtifactMissing,
    ArtifactStorageError,
    _filename,
    _missing_message,
)
from releases.errors import TransientError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3 import S3Client


class BucketStorage(S3Storage):  # type: ignore[misc]  # django-storages ships no types
    """django-storages' S3 backend, as ``ARTIFACT_STORAGE=s3`` configures it,
    with the artifact client's backend for it (``artifacts._backend``)."""

    def artifact_backend(self) -> Bucket:
        return Bucket(self)


class Bucket:
    """An S3 compatible bucket, through django-storages' S3Storage (its
    configuration and connection; the requests are made here, because its
    save() cannot ask for a conditional put and its open() downloads the
    whole object before the first byte is read)."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.client: S3Client = storage.connection.meta.client
        self.bucket = str(storage.bucket_name)

    def key(self, name: str) -> str:
        # The backend's own mapping (prefix, and no escape above it), so that
        # anything using storages["artifacts"] finds the same objects.
        return str(self.storage._normalize_name(clean_name(name)))

    def size(self, name: str) -> int | None:
        with _s3_errors(name):
            try:
                # Reference: https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
                return int(self.client.head_object(Bucket=self.bucket, Key=self.key(name))["ContentLength"])
            except ClientError as exc:
                if _status(exc) == 404:
                    return None
                raise

    def chunks(self, name: str) -> Iterator[bytes]:
        with _s3_errors(name):
            # Reference: https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html
            body = self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"]
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

    def open_seekable(self, name: str) -> IO[bytes]:
        with _s3_errors(name):
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        reader = _RangeReader(self.client, self.bucket, self.key(name), name, int(head["ContentLength"]), head["ETag"])
        return io.BufferedReader(reader, buffer_size=RANGE_BUFFER)

    def publish(self, source: Path, name: str, size: int, sha256: str) -> bool:
        """One PutObject with ``If-None-Match: *`` (the store refuses it with
        412 when the name exists) and the body's SHA-256, which S3 checks
        before it keeps anything."""
        with _s3_errors(name), source.open("rb") as body:
            try:
                # Reference: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key(name),
                    Body=body,
                    ContentLength=size,
                    ContentType="application/octet-stream",
                    ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
                    Metadata={"sha256": sha256},
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if _status(exc) == 412:
                    return False
                raise
        return True


class _RangeReader(io.RawIOBase):
    """A stored object read by ranged GETs, each bound to the ETag seen at
    the start, so that an object replaced mid-read fails instead of mixing
    two files' bytes."""

    def __init__(self, client: S3Client, bucket: str, key: str, name: str, size: int, etag: str) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._name = client, bucket, key, name
        self._size, self._etag, self._position = size, etag, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._position >= self._size or not len(view):
            return 0
        last = min(self._position + len(view), self._size) - 1
        with _s3_errors(self._name):
            data = self._client.get_object(
                Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{last}", IfMatch=self._etag
            )["Body"].read()
        view[: len(data)] = data
        self._position += len(data)
        return len(data)


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@contextlib.contextmanager
def _s3_errors(name: str) -> Iterator[None]:
    """What the store answered, in words a person can act on: a missing
    object, a change mid-read, a refusal (credentials, bucket policy), or a
    transient failure worth another try (botocore has already retried)."""
    try:
        yield
    except ClientError as exc:
        status = _status(exc)
        code = exc.response.get("Error", {}).get("Code", str(status))
        if status == 404 and code in {"404", "NoSuchKey", "NotFound"}:
            raise ArtifactMissing(_missing_message(name)) from None
        if status == 412:
            raise ArtifactStorageError(f"{_filename(name)} changed in artifact storage while it was read.") from None
        if status >= 500 or status in {409, 429} or code in {"SlowDown", "RequestTimeout"}:
            raise TransientError(f"Artifact storage answered {code} for {_filename(name)}; try again later.") from None
        raise ArtifactStorageError(
            f"Artifact storage refused {_filename(name)}: {code}. Check the bucket, its policy and the "
            "ARTIFACT_S3_* settings."
        ) from None
    except botocore_errors.NoCredentialsError:
        raise ArtifactStorageError(
            "Artifact storage has no credentials: set ARTIFACT_S3_ACCESS_KEY_ID and ARTIFACT_S3_SECRET_ACCESS_KEY, "
            "or give this host a role."
        ) from None
    except (
        botocore_errors.ConnectionError,
        botocore_errors.HTTPClientError,
        botocore_errors.IncompleteReadError,
    ) as exc:
        raise TransientError(
            f"Artifact storage could not be reached ({type(exc).__name__}); try again later."
        ) from None
    except botocore_errors.BotoCoreError as exc:
        raise ArtifactStorageError(f"Artifact storage could not be used: {type(exc).__name__}.") from None
