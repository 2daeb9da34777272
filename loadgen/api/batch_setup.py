"""The S3 and `bedrock` clients a run's batch arms use (engine.batch_arm.BatchSetup).

- `simulate`: the emulator's batch job store (emulator.batch.JobStore) on the run's
  VirtualClock, its S3 a MemoryStorage, behind stand-ins shaped like aiobotocore's `s3` and
  `bedrock` clients (same keyword arguments, same response members, errors as botocore
  ClientError with Bedrock's code), so the arm runs the code `loadgen run` runs, in
  virtual time: 50,000 records take seconds of wall time.
- `loadgen run`: aiobotocore's real `s3` and `bedrock` clients, against AWS (with
  `[target] batch = { bucket, role_arn }`), or against the built-in emulator's control
  plane and moto's S3 server, which `run` starts beside it (the bucket is created there).

Bedrock's batch quotas come from emulator.toml [batch.quotas] (AWS's defaults, with their
sources) for both: the emulator enforces them, and against AWS they are what a job split
must respect.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import sys
import uuid
from typing import Any, AsyncIterator

from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError

from loadgen.emulator.batch import JobStore
from loadgen.emulator.batch_config import BatchConfig
from loadgen.emulator.batch_requests import ControlError, JobRequest, RequestInvalid
from loadgen.emulator.storage import MemoryStorage
from loadgen.engine.batch_arm import BatchSetup
from loadgen.engine.batch_jobs import BatchLimits, Layout, safe_key, split

# The bucket loadgen creates in the emulator's S3 (moto or in memory) when the scenario names none.
EMULATOR_BUCKET = "loadgen-batch"
# An IAM role ARN of the right shape for the emulator (it checks the pattern, not the role).
EMULATOR_ROLE = "arn:aws:iam::123456789012:role/loadgen-batch"


def has_batch(sc: Any) -> bool:
    return any(getattr(a, "mode", "on_demand") == "batch" for a in sc.arms)


def limits_from(config: BatchConfig):
    """Bedrock's batch quotas per model id, from the emulator's [batch] table."""
    def limits(model_id: str) -> BatchLimits:
        q = config.quotas_for(model_id)
        return BatchLimits(min_records_per_job=q.min_records_per_job, records_per_job=q.records_per_job,
                           records_per_file=q.records_per_file, file_size_bytes=q.file_size_bytes,
                           job_size_bytes=q.job_size_bytes)
    return limits


def target_batch(sc: Any) -> tuple[str, str, str]:
    """(bucket, role ARN, key prefix) of the scenario's `[target] batch`, or the emulator's."""
    b = getattr(sc.target, "batch", None)
    if b is None:
        return EMULATOR_BUCKET, EMULATOR_ROLE, "loadgen"
    return b.bucket, b.role_arn or EMULATOR_ROLE, b.prefix


def _client_error(code: str, message: str, op: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


# --------------------------------------------------------------------------- simulate

class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        return self._data


class MemoryS3:
    """The calls a batch arm makes on aiobotocore's `s3` client, on a MemoryStorage."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def _bucket(self, bucket: str, op: str) -> dict[str, bytes]:
        if not self.storage.bucket_exists(bucket):
            raise _client_error("NoSuchBucket", "The specified bucket does not exist", op, 404)
        return self.storage.buckets[bucket]

    async def create_bucket(self, Bucket: str, **_: Any) -> dict:
        self.storage.create_bucket(Bucket)
        return {}

    async def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict:
        self._bucket(Bucket, "PutObject")[Key] = bytes(Body)
        return {}

    async def get_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        objs = self._bucket(Bucket, "GetObject")
        if Key not in objs:
            raise _client_error("NoSuchKey", "The specified key does not exist.", "GetObject", 404)
        return {"Body": _Body(objs[Key]), "ContentLength": len(objs[Key])}

    async def list_objects_v2(self, Bucket: str, Prefix: str = "", **_: Any) -> dict:
        self._bucket(Bucket, "ListObjectsV2")
        found = self.storage.list_objects(Bucket, Prefix)
        return {"Contents": [{"Key": k, "Size": n} for k, n in found], "IsTruncated": False,
                "KeyCount": len(found)}

    async def delete_objects(self, Bucket: str, Delete: dict, **_: Any) -> dict:
        objs = self._bucket(Bucket, "DeleteObjects")
        gone = [o["Key"] for o in Delete.get("Objects", []) if objs.pop(o["Key"], None) is not None]
        return {"Deleted": [{"Key": k} for k in gone]}


class StoreBedrock:
    """The calls a batch arm makes on aiobotocore's `bedrock` client, on a JobStore: the
    request checked as the control plane checks it, the answer in the response's shape
    (timestamps as datetimes, as botocore parses them)."""

    def __init__(self, store: JobStore, region: str) -> None:
        self.store, self.region = store, region

    def _do(self, op: str, fn: Any) -> Any:
        try:
            return fn()
        except RequestInvalid as e:
            raise _client_error("ValidationException", str(e), op) from None
        except ControlError as e:
            raise _client_error(e.code, e.message, op, e.status) from None

    def _when(self, iso: str) -> dt.datetime:
        return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))

    async def create_model_invocation_job(self, **kw: Any) -> dict:
        job = self._do("CreateModelInvocationJob", lambda: self.store.create(JobRequest.parse(kw), self.region))
        return {"jobArn": job.arn}

    async def get_model_invocation_job(self, jobIdentifier: str) -> dict:
        """The members a batch arm reads (jobArn, status, message, submitTime, endTime), as
        the control plane's job_wire has them: the full response counts every record of
        the job on each call, which a poll every few virtual seconds of a 50,000-record
        job cannot afford."""
        job = self._do("GetModelInvocationJob", lambda: self.store.get(jobIdentifier, self.region))
        out = {"jobArn": job.arn, "status": job.status, "submitTime": self._when(self.store.iso(job.submit_t))}
        if job.message:
            out["message"] = job.message
        if job.end_t is not None:
            out["endTime"] = self._when(self.store.iso(job.end_t))
        return out

    async def stop_model_invocation_job(self, jobIdentifier: str) -> dict:
        self._do("StopModelInvocationJob", lambda: self.store.stop(jobIdentifier, self.region))
        return {}


def inprocess_batch(sc: Any, clock: Any, emulator_config: Any, *, salt: str = "sim") -> BatchSetup:
    """The batch setup of `simulate`: the emulator's job store on `clock`, S3 in memory."""
    config = BatchConfig.load()
    storage = MemoryStorage()
    bucket, role, prefix = target_batch(sc)
    storage.create_bucket(bucket)
    # wall_epoch 0: the API's timestamps are scenario seconds after 1970, the same every run
    store = JobStore(config, emulator_config, clock=clock, rng=random.Random(f"{sc.seed}:batch"),
                     storage=storage, wall_epoch=0.0)
    # polls cost nothing in virtual time: a 15 s cap times queue waits and job ends closely
    return BatchSetup(s3=MemoryS3(storage), bedrock=StoreBedrock(store, sc.target.region),
                      layout=Layout.of(bucket, prefix, salt), role_arn=role, limits=limits_from(config),
                      poll_first_s=5.0, poll_max_s=15.0)


# --------------------------------------------------------------------------- run

@contextlib.asynccontextmanager
async def http_batch(sc: Any, clock: Any, *, bedrock_url: str | None, s3_url: str | None, salt: str,
                     dummy_credentials: bool, create_bucket: bool) -> AsyncIterator[BatchSetup]:
    """aiobotocore `s3` and `bedrock` clients (None URLs: AWS's endpoints) as a BatchSetup."""
    session = get_session()
    creds = {"aws_access_key_id": "loadgen", "aws_secret_access_key": "loadgen"} if dummy_credentials else {}
    cfg = Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"})
    bucket, role, prefix = target_batch(sc)
    async with session.create_client("s3", region_name=sc.target.region, endpoint_url=s3_url, config=cfg,
                                     **creds) as s3, \
            session.create_client("bedrock", region_name=sc.target.region, endpoint_url=bedrock_url,
                                  config=cfg, **creds) as bedrock:
        if create_bucket:
            await s3.create_bucket(Bucket=bucket)
        yield BatchSetup(s3=s3, bedrock=bedrock, layout=Layout.of(bucket, prefix, salt, uuid.uuid4().hex[:8]),
                         role_arn=role,
                         limits=limits_from(BatchConfig.load()),
                         # against the emulator the job model runs on the run's clock
                         poll_first_s=5.0, poll_max_s=60.0)


async def leftover_objects(setup: BatchSetup) -> list[str]:
    """Every object under the run's prefix (inputs, outputs, manifests), sorted."""
    keys: list[str] = []
    kw: dict[str, Any] = {"Bucket": setup.layout.bucket, "Prefix": setup.layout.prefix}
    while True:
        page = await setup.s3.list_objects_v2(**kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return sorted(keys)
        kw["ContinuationToken"] = page["NextContinuationToken"]


async def remove_objects(setup: BatchSetup, keys: list[str]) -> int:
    """Delete `keys` from the run's bucket (1000 per call, S3's limit); how many went."""
    gone = 0
    for i in range(0, len(keys), 1000):
        resp = await setup.s3.delete_objects(Bucket=setup.layout.bucket,
                                             Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
        gone += len(resp.get("Deleted", []))
    return gone


async def batch_leftovers(setup: BatchSetup, cleanup: bool) -> tuple[list[str], int, str | None]:
    """At the end of a run whose batch objects live in a real S3 (not the emulator's moto,
    gone with it): (the s3:// URIs of what the run left under its prefix, how many objects
    --cleanup removed, why the bucket could not be read or None)."""
    where = setup.layout.uri(setup.layout.prefix)
    try:
        keys = await leftover_objects(setup)
        removed = await remove_objects(setup, keys) if cleanup and keys else 0
    except Exception as e:  # noqa: BLE001 - the run's results are written; say what could not be checked
        return [], 0, f"could not list the objects under {where}: {e}"
    left = keys if not removed else await leftover_objects(setup)
    return [f"s3://{setup.layout.bucket}/{k}" for k in left], removed, None


def leftover_lines(setup_uri: str, left: list[str], removed: int, problem: str | None) -> list[str]:
    """What `loadgen run` prints about a batch run's S3 objects."""
    if problem:
        return [f"batch: {problem}"]
    lines = [f"batch: removed {removed} object(s) under {setup_uri} (--cleanup)"] if removed else []
    if left:
        lines.append(f"batch: {len(left)} object(s) left under {setup_uri}"
                     + ("" if removed else " (remove them with --cleanup)") + ":")
        lines += [f"  {u}" for u in left]
    return lines


def plan_lines(sc: Any, arm: Any, requests: int, input_tokens: int) -> list[str]:
    """The dry plan's lines for a batch arm: records, jobs and where their objects go.
    `requests` and `input_tokens` are the arm's planned totals."""
    limits = limits_from(BatchConfig.load())(arm.model_id)
    # a record's line: its text (4 characters a token) plus the JSON around it
    per_record = (input_tokens / requests * 4 + 400) if requests else 0
    sizes = split(requests, limits.records_per_job_for(per_record * 1.2))
    bucket, _, prefix = target_batch(sc)
    base = f"s3://{bucket}/{prefix.strip('/') + '/' if prefix.strip('/') else ''}<run>/{safe_key(arm.name)}"
    lines = [f"  batch        {requests:,} records in {len(sizes)} job(s)"
             + (f" of {min(sizes):,}..{max(sizes):,} records" if sizes else "")
             + f" (Bedrock: at least {limits.min_records_per_job:,}, at most {limits.records_per_job:,} "
               "per job); modelInvocationType Converse",
             f"  S3           input  {base}/input/job-NNNN.jsonl",
             f"               output {base}/output/job-NNNN/<job id>/ (<run>: the results directory's name)"]
    if sizes and min(sizes) < limits.min_records_per_job:
        lines.append(f"  WARNING      {min(sizes):,} records is below Bedrock's minimum of "
                     f"{limits.min_records_per_job:,} per job: that job will fail in validation, as Bedrock "
                     "fails it (its records are counted as not completed)")
    if sc.target.kind != "aws":
        lines.append("               (the emulator's S3: moto's server in `run`, memory in `simulate`; the "
                     "bucket is created)")
    return lines
