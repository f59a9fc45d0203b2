"""A real S3 API server for tests: moto's server on a free loopback port.

The console reaches it over HTTP with boto3, as it would reach AWS or
MinIO; ``client()`` is another party with the same bucket (a second host,
or someone with the credentials writing behind the console's back).
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from tests.support.devpi import free_port

REGION = "eu-west-1"
ACCESS_KEY_ID = "console-tests-key-id"
SECRET_ACCESS_KEY = "console-tests-secret-access-key"


class S3Server:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.endpoint_url = f"http://{host}:{self.port}"
        self._server = ThreadedMotoServer(ip_address=host, port=self.port, verbose=False)
        self._buckets = itertools.count(1)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def new_bucket(self) -> str:
        # moto keeps its buckets per process, whichever server made them: the
        # name must be new to the process, not only to this server.
        name = f"artifacts-{next(self._buckets)}-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        return name

    def environment(self, bucket: str, **extra: str) -> dict[str, str]:
        """The console's environment variables for this bucket."""
        return {
            "ARTIFACT_STORAGE": "s3",
            "ARTIFACT_S3_BUCKET": bucket,
            "ARTIFACT_S3_ENDPOINT_URL": self.endpoint_url,
            "ARTIFACT_S3_REGION": REGION,
            "ARTIFACT_S3_ADDRESSING_STYLE": "path",
            "ARTIFACT_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "ARTIFACT_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            **extra,
        }
