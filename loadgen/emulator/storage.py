"""Where batch jobs read their input and write their output: the Storage protocol (S3 as
buckets, keys and bytes) and MemoryStorage, a dict-backed one for pure tests and
virtual-time runs without an S3 server (loadgen/emulator/s3.py has the S3 one)."""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    """The S3 the jobs read and write (bucket names, object keys, bytes)."""

    def bucket_exists(self, bucket: str) -> bool: ...
    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int]]: ...
    def get(self, bucket: str, key: str) -> bytes: ...
    def put(self, bucket: str, key: str, data: bytes) -> None: ...


class MemoryStorage:
    """A Storage in a dict, for pure tests and virtual-time runs without an S3 server."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, bytes]] = {}

    def create_bucket(self, bucket: str) -> None:
        self.buckets.setdefault(bucket, {})

    def bucket_exists(self, bucket: str) -> bool:
        return bucket in self.buckets

    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        return sorted((k, len(v)) for k, v in self.buckets[bucket].items() if k.startswith(prefix))

    def get(self, bucket: str, key: str) -> bytes:
        return self.buckets[bucket][key]

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.buckets[bucket][key] = data
