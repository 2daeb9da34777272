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
import socket
import threading
from typing import Any

# Credentials the emulator's own S3 client signs with: moto accepts any.
_CREDENTIALS = {"aws_access_key_id": "loadgen", "aws_secret_access_key": "loadgen"}


def _check_bindable(host: str, port: int) -> None:
    """OSError if `host:port` cannot be bound. moto's start() waits for its server thread
    to bind, and waits forever when the bind fails (werkzeug prints the error and ends
    the thread): without this check `loadgen emulator --host 198.51.100.1` hung, deaf
    to Ctrl-C. A fixed port taken between this check and moto's bind would still hang;
    the emulator asks for port 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


class S3Server:
    """moto's S3 server on `host:port` (0 = a free port); a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: Any = None
        self.url = ""
        self.started = threading.Event()

    def start(self) -> str:
        """Start serving (blocks until bound); returns the endpoint URL (http://HOST:PORT)."""
        from moto.server import ThreadedMotoServer  # deferred: moto loads boto3 and flask (~1 s); `loadgen emulator` starts it after the runtime port is up
        # werkzeug logs one access line per request to stderr even when not verbose
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        _check_bindable(self.host, self.port)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.started.set()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> "S3Server":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class S3Storage:
    """The job store's Storage on an S3 endpoint (path-style addressing: moto's URL is an
    IP address). `endpoint`: a URL, or an S3Server whose URL is taken (waiting for it to
    start) at the first call. Calls block: the HTTP shell runs the store in worker threads."""

    def __init__(self, endpoint: "str | S3Server", region: str = "us-east-1") -> None:
        self._endpoint = endpoint
        self._region = region
        self._made: Any = None
        self._lock = threading.Lock()

    @property
    def _client(self) -> Any:
        with self._lock:
            if self._made is None:
                import botocore.config  # deferred: with moto's server, off the runtime's start-up path
                import botocore.session  # deferred: with moto's server, off the runtime's start-up path

                url = self._endpoint
                if isinstance(url, S3Server):
                    url.started.wait()
                    url = url.url
                self._made = botocore.session.get_session().create_client(
                    "s3", region_name=self._region, endpoint_url=url, **_CREDENTIALS,
                    config=botocore.config.Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))
            return self._made

    def bucket_exists(self, bucket: str) -> bool:
        client = self._client
        try:
            client.head_bucket(Bucket=bucket)
            return True
        except client.exceptions.ClientError:
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
