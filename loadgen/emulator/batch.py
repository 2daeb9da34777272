"""Batch inference jobs (CreateModelInvocationJob & co.) as a pure model on a clock.
(About 400 lines: one job's timeline, input checks and record processing read together.)

JobStore keeps the jobs of one emulator; every call takes the time from the injected
clock (`clock.now()`, scenario seconds), so `simulate` drives it in virtual time and
`loadgen emulator` on the real clock. Input and output go through a Storage (S3 over the
wire in loadgen/emulator/s3.py; MemoryStorage here for pure tests). Nothing happens in
the background: `advance()` (called by every operation, and by the HTTP shell's ticker)
moves each job through the statuses whose times have passed.

Lifecycle (statuses and their meaning: botocore bedrock service-2.json
ModelInvocationJobStatus; durations: emulator.toml [batch.timing_presets], ASSUMPTIONS):

  Submitted --submitted_s--> Validating --validation_s--> Scheduled --queue_wait_s-->
  InProgress --(one record per 60/records_per_minute s)--> Completed
  Validating fails (input missing, not .jsonl, a line not a JSON object, record counts or
      sizes outside the quotas, bucket missing) --> Failed with `message`
  Scheduled past jobExpirationTime (submit + timeoutDurationInHours) --> Expired
  InProgress past jobExpirationTime --> PartiallyCompleted ("not all records in time")
  StopModelInvocationJob --> Stopping --stopping_s--> Stopped

Outputs are written when a job ends (Completed, PartiallyCompleted, Stopped after it
started), at `<output s3Uri>/<job id>/<input file name>.out` plus `manifest.json.out`
(layout: AWS sample bedrock-batch-orchestrator lambda/postprocess.py; format:
batch-inference-results.html). ASSUMPTION: Bedrock shows results while InProgress; the
emulator writes them at the end. Records are planned by the emulator's own model
(EmulatorModel.begin, the runtime's token accounting and text) at the scenario time each
record is processed, in a separate instance with no on-demand quotas (batch has its own
quotas) and its own prompt cache (ASSUMPTION: records read cache entries earlier records
of batch jobs wrote; whether Bedrock bills cache in batch is UNSOURCED).
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from loadgen.catalog import profiles
from loadgen.catalog.models import ModelInfo, lookup
from loadgen.emulator.batch_config import BatchConfig
from loadgen.emulator.batch_records import RecordError, converse_body, model_output, output_line
from loadgen.emulator.batch_requests import ACCOUNT_ID, ControlError, JobRequest, S3Uri, invalid, not_found
from loadgen.emulator.config import EmulatorConfig, Limit
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.routing import resolve, resolve_model_id
from loadgen.emulator.storage import MemoryStorage, Storage

ENDED = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
# counted against concurrent_jobs (ASSUMPTION: every status before the end)
RUNNING = ("Submitted", "Validating", "Scheduled", "InProgress", "Stopping")


@dataclass
class _Record:
    record_id: str
    model_input: Any
    file: str              # input file name (last key segment)
    result: Any = None     # modelOutput dict, RecordError or BedrockError once processed
    tokens: tuple[int, int] = (0, 0)   # (input incl. cache, output) of a success


@dataclass
class Job:
    """One batch job. Times are scenario seconds on the store's clock."""

    job_id: str
    region: str
    req: JobRequest
    submit_t: float
    timeout_h: int
    status: str = "Submitted"
    message: str | None = None
    modified_t: float = 0.0
    end_t: float | None = None
    stop_t: float | None = None
    records: list[_Record] = field(default_factory=list)
    files: list[str] = field(default_factory=list)   # input file names, in order
    processed: int = 0
    validated: bool = False

    @property
    def arn(self) -> str:
        return f"arn:aws:bedrock:{self.region}:{ACCOUNT_ID}:model-invocation-job/{self.job_id}"

    @property
    def expire_t(self) -> float:
        return self.submit_t + self.timeout_h * 3600.0

    def counts(self) -> dict[str, int]:
        done = self.records[:self.processed]
        errors = sum(1 for r in done if isinstance(r.result, (RecordError, BedrockError)))
        return {"totalRecordCount": len(self.records), "processedRecordCount": len(done),
                "successRecordCount": len(done) - errors, "errorRecordCount": errors}


class _RecordClock:
    """The batch model's clock: the scenario time of the record being planned."""

    t = 0.0

    def now(self) -> float:
        return self.t


class JobStore:
    """The batch jobs of one emulator (every Region's), on `clock`; thread-safe (the HTTP
    shell calls it from worker threads, as S3 calls block)."""

    def __init__(self, config: BatchConfig, emulator: EmulatorConfig, *, clock: Any, rng: random.Random,
                 storage: Storage, wall_epoch: float | None = None) -> None:
        self.config = config
        self.clock = clock
        self.storage = storage
        # wall-clock seconds (Unix time) at scenario time 0, for the API's timestamps
        self.wall_epoch = time.time() - clock.now() if wall_epoch is None else wall_epoch
        self._ids = random.Random(rng.getrandbits(64))
        self._record_clock = _RecordClock()
        # batch has its own quotas: the model that plans records has no on-demand ones
        unlimited = Limit(0, 0, 0)
        batch_cfg = dataclasses.replace(emulator, quota_default=unlimited, quota_scopes=(), quota_models=(),
                                        region_capacity_tpm=0)
        self._model = EmulatorModel(batch_cfg, clock=self._record_clock, rng=random.Random(rng.getrandbits(64)))
        self.jobs: dict[str, Job] = {}          # job id -> job, in creation order
        self._tokens: dict[tuple[str, str], str] = {}   # (Region, clientRequestToken) -> job id
        self._lock = threading.RLock()

    # -- operations ----------------------------------------------------------

    def create(self, req: JobRequest, region: str) -> Job:
        """CreateModelInvocationJob (request already shape-checked by JobRequest.parse)."""
        with self._lock:
            now = self.clock.now()
            self._advance(now)
            if req.client_request_token is not None:
                # idempotent: the same token answers with the job it created (ASSUMPTION:
                # whatever the other parameters are; Bedrock's check is UNSOURCED)
                known = self._tokens.get((region, req.client_request_token))
                if known is not None:
                    return self.jobs[known]
            # the same model-id rules as Converse (bare id served on demand in the Region, geo
            # profile callable from it, global profile exists); ASSUMPTION: Bedrock's own list
            # of batch-capable models is not modelled
            resolved = resolve(req.model_id, region)
            if isinstance(resolved, BedrockError):
                raise invalid(resolved.message)
            base = profiles.base_id(resolve_model_id(req.model_id))
            if any(j.req.job_name == req.job_name and j.region == region for j in self.jobs.values()):
                # ASSUMPTION: job names are unique per account and Region (Bedrock's rule UNSOURCED)
                raise ControlError(400, "ConflictException",
                                   f"A batch inference job named {req.job_name} already exists.")
            quota = self.config.quotas_for(base).concurrent_jobs
            running = sum(1 for j in self.jobs.values() if j.region == region and j.status in RUNNING
                          and profiles.base_id(resolve_model_id(j.req.model_id)) == base)
            if running >= quota:
                raise ControlError(400, "ServiceQuotaExceededException",
                                   f"You have reached the maximum of {quota} in-progress and submitted batch "
                                   f"inference jobs for {base} (emulator.toml batch.quotas.concurrent_jobs).")
            job_id = "".join(self._ids.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
            job = Job(job_id=job_id, region=region, req=req, submit_t=now, modified_t=now,
                      timeout_h=req.timeout_hours or self.config.default_timeout_hours)
            self.jobs[job_id] = job
            if req.client_request_token is not None:
                self._tokens[(region, req.client_request_token)] = job_id
            return job

    def get(self, identifier: str, region: str) -> Job:
        """GetModelInvocationJob: by ARN or 12-character id, in the caller's Region."""
        with self._lock:
            self._advance(self.clock.now())
            return self._find(identifier, region)

    def list(self, region: str) -> list[Job]:
        """Every job of a Region, oldest first (filters and paging: the HTTP shell)."""
        with self._lock:
            self._advance(self.clock.now())
            return [j for j in self.jobs.values() if j.region == region]

    def stop(self, identifier: str, region: str) -> Job:
        """StopModelInvocationJob: Stopping now, Stopped after stopping_s. A job that has
        ended answers ConflictException (ASSUMPTION: UNSOURCED when Bedrock raises it)."""
        with self._lock:
            now = self.clock.now()
            self._advance(now)
            job = self._find(identifier, region)
            if job.status in ENDED:
                raise ControlError(400, "ConflictException",
                                   f"The batch inference job {job.job_id} is {job.status} and cannot be stopped.")
            if job.status != "Stopping":
                job.status, job.stop_t, job.modified_t = "Stopping", now, now
            return job

    def advance(self) -> None:
        """Move every job through the statuses whose times have passed."""
        with self._lock:
            self._advance(self.clock.now())

    def next_event(self) -> float | None:
        """The earliest scenario time at which some job changes (None: nothing pending),
        so a virtual-time driver knows how far to sleep."""
        with self._lock:
            ts = [t for j in self.jobs.values() if j.status not in ENDED
                  for t in [self._next_t(j)] if t is not None]
            return min(ts) if ts else None

    def iso(self, t: float) -> str:
        """An API timestamp (iso8601, botocore's Timestamp shape) for scenario time t."""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.wall_epoch + t)) + \
            f".{int((self.wall_epoch + t) % 1 * 1000):03d}Z"

    # -- lifecycle -----------------------------------------------------------

    def _find(self, identifier: str, region: str) -> Job:
        job_id = identifier.rsplit("/", 1)[-1]
        job = self.jobs.get(job_id)
        if job is None or job.region != region or (identifier.startswith("arn:") and identifier != job.arn):
            # text: the emulator's (UNSOURCED)
            raise not_found(f"The specified batch inference job {identifier} could not be found.")
        return job

    def _times(self, job: Job) -> tuple[float, float, float]:
        """(Validating starts, Scheduled starts, InProgress starts), scenario s."""
        tm = self.config.timing_for(resolve_model_id(job.req.model_id))
        v = job.submit_t + tm.submitted_s
        s = v + tm.validation_s
        return v, s, s + tm.queue_wait_s

    def _record_t(self, job: Job, i: int) -> float:
        """When record i (0-based) of a job is done, scenario s."""
        tm = self.config.timing_for(resolve_model_id(job.req.model_id))
        return self._times(job)[2] + (i + 1) * 60.0 / tm.records_per_minute

    def _next_t(self, job: Job) -> float | None:
        v, s, p = self._times(job)
        if job.status == "Stopping":
            return job.stop_t + self.config.timing_for(resolve_model_id(job.req.model_id)).stopping_s
        if job.status == "Submitted":
            return v
        if job.status == "Validating":
            return s
        if job.status == "Scheduled":
            return min(p, job.expire_t)
        if job.status == "InProgress":
            return min(self._record_t(job, job.processed), job.expire_t)
        return None

    def _advance(self, now: float) -> None:
        # records of every job in time order, so the batch model's cache sees time move forward
        due: list[tuple[float, int, Job]] = []
        for job in self.jobs.values():
            self._step(job, now)
            if job.status in ("InProgress", "Stopping") and job.validated:
                limit = now if job.stop_t is None else min(now, job.stop_t)
                limit = min(limit, job.expire_t)
                i = job.processed
                while i < len(job.records) and self._record_t(job, i) <= limit:
                    due.append((self._record_t(job, i), i, job))
                    i += 1
        due.sort(key=lambda x: (x[0], x[2].submit_t, x[1]))
        for t, i, job in due:
            self._process(job, i, t)
        for job in self.jobs.values():
            self._finish(job, now)

    def _step(self, job: Job, now: float) -> None:
        """The status transitions before records are processed."""
        v, s, p = self._times(job)
        if job.status == "Submitted" and now >= v:
            job.status, job.modified_t = "Validating", v
        if job.status == "Validating" and now >= s:
            problem = self._validate(job)
            if problem is not None:
                job.status, job.message, job.modified_t, job.end_t = "Failed", problem, s, s
                return
            job.status, job.modified_t = "Scheduled", s
        if job.status == "Scheduled":
            if job.expire_t < p and now >= job.expire_t:
                job.status, job.modified_t, job.end_t = "Expired", job.expire_t, job.expire_t
                job.message = ("The batch inference job was scheduled but did not begin before its timeout "
                               f"of {job.timeout_h} hours.")
            elif now >= p and p <= job.expire_t:
                job.status, job.modified_t = "InProgress", p
        if job.status == "Stopping" and not job.validated and job.stop_t is not None:
            tm = self.config.timing_for(resolve_model_id(job.req.model_id))
            if now >= job.stop_t + tm.stopping_s:
                t = job.stop_t + tm.stopping_s
                job.status, job.modified_t, job.end_t = "Stopped", t, t

    def _finish(self, job: Job, now: float) -> None:
        """The transitions after records: Completed, PartiallyCompleted, Stopped."""
        if job.status == "InProgress":
            if job.processed == len(job.records):
                t = self._record_t(job, len(job.records) - 1) if job.records else self._times(job)[2]
                self._end(job, "Completed", t)
            elif now >= job.expire_t:
                job.message = (f"Not all records were processed before the job's timeout of {job.timeout_h} "
                               f"hours ({job.processed} of {len(job.records)}).")
                self._end(job, "PartiallyCompleted", job.expire_t)
        elif job.status == "Stopping" and job.validated:
            t = job.stop_t + self.config.timing_for(resolve_model_id(job.req.model_id)).stopping_s
            if now >= t:
                self._end(job, "Stopped", t)

    def _end(self, job: Job, status: str, t: float) -> None:
        if status == "Stopped" and job.stop_t is not None and job.stop_t < self._times(job)[2]:
            pass  # stopped before it started (even if Stopping ends after that): nothing to write (ASSUMPTION)
        else:
            self._write_outputs(job)
        job.status, job.modified_t, job.end_t = status, t, t

    # -- input, records, output ---------------------------------------------

    def _validate(self, job: Job) -> str | None:
        """Read and check the input as Bedrock's Validating step does; the reason it fails
        (texts: the emulator's, Bedrock's are UNSOURCED) or None, with job.records set."""
        src, dst = job.req.input_uri, job.req.output_uri
        for what, uri in (("input", src), ("output", dst)):
            if not self.storage.bucket_exists(uri.bucket):
                return f"The {what} S3 bucket {uri.bucket} does not exist or the role cannot access it."
        base = resolve_model_id(job.req.model_id)
        q = self.config.quotas_for(base)
        # a folder (every .jsonl under it) or a single file (user guide batch-inference-create)
        objs = self.storage.list_objects(src.bucket, src.key)
        if src.key and not src.key.endswith("/"):
            exact = [o for o in objs if o[0] == src.key]
            objs = exact or [o for o in objs if o[0].startswith(src.key + "/")]
        files = [(k, n) for k, n in objs if k.endswith(".jsonl")]
        if not files:
            return f"No .jsonl input file was found at {src}."
        total_bytes = sum(n for _, n in files)
        if total_bytes > q.job_size_bytes:
            return (f"The input files total {total_bytes} bytes, more than the job size quota of "
                    f"{q.job_size_bytes} bytes.")
        records: list[_Record] = []
        names = []
        for key, size in files:
            name = key.rsplit("/", 1)[-1]
            if size > q.file_size_bytes:
                return f"The input file {name} is {size} bytes, more than the file size quota of {q.file_size_bytes}."
            lines = [ln for ln in self.storage.get(src.bucket, key).decode("utf-8", "replace").splitlines()
                     if ln.strip()]
            if len(lines) > q.records_per_file:
                return (f"The input file {name} has {len(lines)} records, more than the quota of "
                        f"{q.records_per_file} records per file.")
            for n, ln in enumerate(lines, 1):
                try:
                    rec = json.loads(ln)
                except ValueError:
                    rec = None
                if not isinstance(rec, dict) or "modelInput" not in rec:
                    return (f"Line {n} of the input file {name} is not a JSON object with a modelInput "
                            "(each line must be {\"recordId\": ..., \"modelInput\": {...}}).")
                rid = rec.get("recordId")
                if rid is None:
                    rid = f"{len(records) + 1:011d}"   # Bedrock adds one (its form UNSOURCED)
                records.append(_Record(str(rid), rec["modelInput"], name))
            names.append(name)
        if len(records) < q.min_records_per_job:
            return (f"The job has {len(records)} records, fewer than the minimum of {q.min_records_per_job} "
                    "records per batch inference job.")
        if len(records) > q.records_per_job:
            return (f"The job has {len(records)} records, more than the quota of {q.records_per_job} "
                    "records per batch inference job.")
        job.records, job.files, job.validated = records, names, True
        return None

    def _process(self, job: Job, i: int, t: float) -> None:
        rec = job.records[i]
        info: ModelInfo = lookup(resolve_model_id(job.req.model_id))
        itype = job.req.invocation_type
        try:
            body = converse_body(rec.model_input, itype, info)
        except RecordError as e:
            rec.result = e
        else:
            self._record_clock.t = t
            plan = self._model.begin(job.req.model_id, body, stream=False, region=job.region)
            if isinstance(plan, BedrockError):
                rec.result = plan
            else:
                self._model.finish(plan)
                rec.result = model_output(plan, itype, info)
                u = plan.usage
                rec.tokens = (u.input_tokens + u.cache_read + u.cache_write, u.output_tokens)
        job.processed = i + 1

    def _write_outputs(self, job: Job) -> None:
        dst = job.req.output_uri
        if not self.storage.bucket_exists(dst.bucket):
            return
        prefix = (dst.key.rstrip("/") + "/" if dst.key.strip("/") else "") + job.job_id + "/"
        done = job.records[:job.processed]
        for name in job.files:
            lines = [output_line(r.record_id, r.model_input, r.result) for r in done if r.file == name]
            self.storage.put(dst.bucket, prefix + name + ".out", b"".join(lines))
        manifest = {**job.counts(),
                    "inputTokenCount": sum(r.tokens[0] for r in done),
                    "outputTokenCount": sum(r.tokens[1] for r in done)}
        self.storage.put(dst.bucket, prefix + "manifest.json.out", json.dumps(manifest).encode())


__all__ = ["ACCOUNT_ID", "ControlError", "Job", "JobStore", "MemoryStorage", "S3Uri", "Storage"]
