"""S3 for batch jobs: moto's S3 server on 127.0.0.1 beside the emulator, and the Storage
the job store reads and writes it through (botocore over the wire, as Bedrock reads S3).

moto (getmoto/moto, `moto[server]`): `ThreadedMotoServer(ip_address, port)` runs its
werkzeug server in a thread; `start()` returns once it is bound, port 0 picks a free port
and `get_host_and_port()` says which (moto docs/server_mode.rst). The emulator points
only S3 at it: moto does not implement the Bedrock control plane (IMPLEMENTATION_COVERAGE:
no model-invocation jobs, no inference profiles), which the emulator serves itself.
"""

from __future__ import annotations

import logging

import botocore.config
import botocore.session
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

# Credentials the emulator's own S3 client signs with: moto accepts any.
_CREDENTIALS = {"aws_access_key_id": "loadgen", "aws_secret_access_key": "loadgen"}


class S3Server:
    """moto's S3 server on `host:port` (0 = a free port); a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.url = ""

    def start(self) -> str:
        """Start serving; returns the endpoint URL (http://HOST:PORT)."""
        # werkzeug logs one access line per request to stderr even when not verbose
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "S3Server":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3Storage:
    """The job store's Storage on an S3 endpoint (path-style addressing: moto's URL is an
    IP address). Calls block: the HTTP shell runs the store in worker threads."""

    def __init__(self, endpoint_url: str, region: str = "us-east-1") -> None:
        session = botocore.session.get_session()
        self._client = session.create_client(
            "s3", region_name=region, endpoint_url=endpoint_url, **_CREDENTIALS,
            config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))

    def bucket_exists(self, bucket: str) -> bool:
        try:
            self._client.head_bucket(Bucket=bucket)
            return True
        except ClientError:
            return False

    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
        return out

    def get(self, bucket: str, key: str) -> bytes:
        return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self._client.put_object(Bucket=bucket, Key=key, Body=data)
