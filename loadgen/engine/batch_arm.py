"""A batch arm (`[[arms]] mode = "batch"`): the shared schedule's requests as batch inference
records, sent the way a batch pipeline sends them, every record accounted for.

The arm reads the same seeded schedule and builds the same Converse bodies as the
on-demand arms (engine.schedule, engine.workload). Each request becomes a record when it
arrives; the records are split into as few jobs as Bedrock's quotas allow, sizes as even as
possible (batch_jobs.split), and a job is submitted when its last record has arrived:
its JSONL is uploaded to S3, CreateModelInvocationJob is called (modelInvocationType
"Converse"), GetModelInvocationJob is polled with exponential backoff, and once the job
has ended its output files are read and joined to the records by recordId.

Every record is one Attempt (engine.record): ok with the usage of its modelOutput, billed
at the batch price both ways (cache pricing stacked with batch or not, the catalog's
assumption picks cost_usd); an `error` line is status error, code BatchRecordError; the
records of a job that failed, expired or was stopped, or whose run ended first, are
status error with the job's fate as code (BatchJobFailed, BatchJobExpired, ...,
BatchNotCompleted), and records never submitted carry the error that stopped them (or
BatchNotSubmitted). None is dropped.

Clients are duck-typed on aiobotocore's (`s3`, `bedrock`): `loadgen run` passes the real
ones (to AWS, or to the emulator's control plane and moto's S3); `simulate` passes
loadgen.api's in-process stand-ins on the same clock. Times are scenario seconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

import anyio

from loadgen.engine import schedule
from loadgen.engine.batch_jobs import BatchLimits, Layout, index_of, parse_output, record_line, split
from loadgen.engine.record import BATCH_RECORD_ERROR, Attempt, observed_cache_state
from loadgen.engine.workload import Request

ENDED = ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired")
# statuses that say the job has begun processing (for the queue wait)
BEGUN = ("InProgress", "Completed", "PartiallyCompleted")
# a stop for these reasons gives up on the jobs in flight (the others let them finish)
GIVE_UP = ("interrupted", "target-failed")
ZERO = {"input": 0.0, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0, "total": 0.0}


@dataclass(frozen=True)
class BatchSetup:
    """What a run's batch arms need: the clients, where objects go, the job role, Bedrock's
    quotas per model id, and the polling backoff (scenario seconds)."""

    s3: Any
    bedrock: Any
    layout: Layout
    role_arn: str
    limits: Callable[[str], BatchLimits] = lambda model_id: BatchLimits()
    poll_first_s: float = 5.0
    poll_max_s: float = 60.0
    failures_before_giving_up: int = 5     # consecutive failed polls of one job


def error_code(e: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception's class name."""
    err = getattr(e, "response", None)
    code = err.get("Error", {}).get("Code") if isinstance(err, dict) else None
    return str(code or type(e).__name__)


@dataclass
class _Record:
    index: int
    intended: float
    req: Request
    wall: float
    worst: float      # USD reserved against --max-cost-usd until booked
    booked: bool = False


@dataclass
class _Job:
    k: int
    records: list[_Record]
    job_id: str | None = None
    arn: str = ""
    status: str = "NotSubmitted"
    submit_t: float | None = None
    begun_t: float | None = None
    duration_s: float | None = None
    message: str | None = None


class BatchArm:
    """One batch arm of a Runner (`host`): its records, jobs and attempts."""

    def __init__(self, host: Any, arm: Any, setup: BatchSetup) -> None:
        self.host, self.arm, self.setup = host, arm, setup
        self.clock = host.clock
        self.workload = host.workloads[arm.name]
        self.jobs: list[_Job] = []

    # -- collecting and submitting ------------------------------------------

    async def run(self, tg: Any) -> None:
        """Collect the records as they arrive; submit each job when full (the last one when
        the schedule ends or the run stops); the jobs run on as tasks of `tg`."""
        host, sc = self.host, self.host.scenario
        plan = [(i, offset, sizes) for i, offset, sizes in schedule.open_loop(sc, host.segment)]
        cap = host.limits.max_requests
        n = len(plan) if cap is None else min(len(plan), cap)
        if n == 0:
            return
        probe = record_line(plan[0][0], self.workload.single(plan[0][0], plan[0][2]).params)
        most = self.setup.limits(self.arm.model_id).records_per_job_for(len(probe) * 1.2)
        sizes = split(n, most)
        pending: list[_Record] = []
        try:
            for i, offset, draw in plan[:n]:
                if not await host._sleep_until(offset):
                    break
                req = self.workload.single(i, draw)
                worst = host._worst_cost(req) if host.limits.max_cost_usd is not None else 0.0
                if not host._admit(req):
                    break
                pending.append(_Record(i, offset, req, host.wall(), worst))
                if len(pending) == sizes[len(self.jobs)]:
                    self._submit(tg, pending)
                    pending = []
            if pending and host.stop_reason not in GIVE_UP:
                self._submit(tg, pending)  # the run stopped early: what was collected still goes
                pending = []
        finally:
            for r in pending:  # interrupted before its job was submitted
                self._book(r, None, status="error", code="BatchNotSubmitted",
                           message="the run ended before this record's job was submitted")

    def _submit(self, tg: Any, records: list[_Record]) -> None:
        job = _Job(len(self.jobs), records)
        self.jobs.append(job)
        self.host._spawn(tg, self._job, job)

    async def _call(self, fn: Callable[..., Any], **kw: Any) -> Any:
        with self.clock.in_flight():
            return await fn(**kw)

    async def _job(self, job: _Job) -> None:
        try:
            if await self._create(job):
                await self._await_end(job)
                if job.status in ENDED:
                    await self._collect(job)
        finally:
            # whatever happened (an interrupt, a cancellation), every record is accounted for
            for r in job.records:
                if not r.booked:
                    self._book(r, job, status="error", code="BatchNotCompleted",
                               message=f"the run ended while the job was {job.status}")

    async def _create(self, job: _Job) -> bool:
        s, lay, name = self.setup, self.setup.layout, self.arm.name
        body = b"".join(record_line(r.index, r.req.params) for r in job.records)
        key = lay.input_key(name, job.k)
        try:
            await self._call(s.s3.put_object, Bucket=lay.bucket, Key=key, Body=body)
        except Exception as e:  # noqa: BLE001 - any failure to upload is the records' outcome
            self._give_up(job, error_code(e), f"upload of {lay.uri(key)} failed: {e}")
            return False
        delay = s.poll_first_s
        while True:
            try:
                resp = await self._call(
                    s.bedrock.create_model_invocation_job,
                    jobName=lay.job_name(name, job.k), roleArn=s.role_arn, modelId=self.arm.model_id,
                    modelInvocationType="Converse",
                    inputDataConfig={"s3InputDataConfig": {"s3Uri": lay.uri(key), "s3InputFormat": "JSONL"}},
                    outputDataConfig={"s3OutputDataConfig": {"s3Uri": lay.uri(lay.output_key(name, job.k))}})
                break
            except Exception as e:  # noqa: BLE001
                code = error_code(e)
                # too many jobs of this model in flight (Bedrock's concurrent-jobs quota):
                # wait for one to end, as a batch pipeline would
                if code == "ServiceQuotaExceededException" and await self._pause(delay):
                    delay = min(delay * 2, s.poll_max_s)
                    continue
                self._give_up(job, code, f"CreateModelInvocationJob failed: {e}")
                return False
        job.submit_t = self.clock.now()
        job.job_id = str(resp["jobArn"]).rsplit("/", 1)[-1]
        job.status = "Submitted"
        job.arn = str(resp["jobArn"])
        return True

    async def _await_end(self, job: _Job) -> None:
        s = self.setup
        delay, failures = s.poll_first_s, 0
        while True:
            try:
                info = await self._call(s.bedrock.get_model_invocation_job, jobIdentifier=job.arn)
                failures = 0
            except Exception as e:  # noqa: BLE001 - a failed poll is retried, a few in a row end it
                failures += 1
                job.message = f"GetModelInvocationJob failed: {error_code(e)}: {e}"
                if failures >= s.failures_before_giving_up:
                    return
                info = None
            if info is not None:
                job.status = str(info.get("status"))
                job.message = info.get("message") or job.message
                now = self.clock.now()
                if job.begun_t is None and job.status in BEGUN:
                    job.begun_t = now
                if job.status in ENDED:
                    start, end = info.get("submitTime"), info.get("endTime")
                    job.duration_s = ((end - start).total_seconds()
                                      if isinstance(start, dt.datetime) and isinstance(end, dt.datetime)
                                      else now - (job.submit_t or now))
                    return
            if not await self._pause(delay):
                await self._stop(job)
                return
            delay = min(delay * 2, s.poll_max_s)

    async def _pause(self, delay: float) -> bool:
        """Sleep `delay` scenario seconds; False if the run gave up meanwhile. A stop that
        lets requests in flight finish (max-requests, max-cost) lets jobs finish too."""
        host = self.host
        t = self.clock.now() + delay
        while self.clock.now() < t:
            if host.stop_reason in GIVE_UP:
                return False
            with anyio.CancelScope() as cs:
                host._sleepers.add(cs)
                try:
                    await self.clock.sleep_until(t)
                finally:
                    host._sleepers.discard(cs)
        return host.stop_reason not in GIVE_UP

    async def _stop(self, job: _Job) -> None:
        """The run gave up on a job still running: ask Bedrock to stop it (best effort; "you're
        only charged for tokens that were already processed")."""
        with anyio.move_on_after(5.0):
            try:
                await self._call(self.setup.bedrock.stop_model_invocation_job,
                                 jobIdentifier=job.arn)
                job.status = "Stopping"
            except Exception:  # noqa: BLE001 - the records are counted as not completed either way
                pass

    async def _collect(self, job: _Job) -> None:
        """Read the job's output files and book every record."""
        s, lay = self.setup, self.setup.layout
        results: dict[int, Any] = {}
        if job.status in ("Completed", "PartiallyCompleted", "Stopped"):
            prefix = lay.output_key(self.arm.name, job.k) + f"{job.job_id}/"
            try:
                keys = await self._list(prefix)
                for key in keys:
                    if key.endswith(".jsonl.out"):
                        resp = await self._call(s.s3.get_object, Bucket=lay.bucket, Key=key)
                        for rec in parse_output(await resp["Body"].read()):
                            i = index_of(rec.record_id)
                            if i is not None:
                                results[i] = rec
            except Exception as e:  # noqa: BLE001 - unread results are records not completed
                job.message = f"reading {lay.uri(prefix)} failed: {error_code(e)}: {e}"
        code = "BatchJob" + job.status
        for r in job.records:
            rec = results.get(r.index)
            if rec is None:
                self._book(r, job, status="error", code=code,
                           message=job.message or f"no output line for record {r.index} (job {job.status})")
            elif rec.usage is None:
                self._book(r, job, status="error", code=BATCH_RECORD_ERROR,
                           message=f"{rec.error_code}: {rec.error_message}")
            else:
                self._book(r, job, status="ok", code=None, message=None, usage=rec.usage,
                           stop_reason=rec.stop_reason)

    async def _list(self, prefix: str) -> list[str]:
        s = self.setup
        keys: list[str] = []
        kw: dict[str, Any] = {"Bucket": s.layout.bucket, "Prefix": prefix}
        while True:
            page = await self._call(s.s3.list_objects_v2, **kw)
            keys += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            kw["ContinuationToken"] = page["NextContinuationToken"]

    # -- booking -------------------------------------------------------------

    def _give_up(self, job: _Job, code: str, message: str) -> None:
        job.message = message
        for r in job.records:
            self._book(r, job, status="error", code=code, message=message[:300])

    def _book(self, r: _Record, job: _Job | None, *, status: str, code: str | None, message: str | None,
              usage: Any = None, stop_reason: str | None = None) -> None:
        """One record's attempt to the sink (synchronous: safe in a `finally` after a cancel)."""
        if r.booked:
            return
        r.booked = True
        host, arm = self.host, self.arm
        u = dict(usage or {})
        costs, stacked, unstacked = ZERO, 0.0, 0.0
        if status == "ok" and u:
            both = {how: host.pricer(r.req.model_id, u, arm.cache_ttl, batch=how) for how in ("stacked", "unstacked")}
            stacked, unstacked = both["stacked"]["total"], both["unstacked"]["total"]
            costs = both[getattr(host.pricer, "batch_cache", "stacked")]
        host.cost_usd += costs["total"]
        host._reserved_cost -= r.worst
        read = int(u.get("cacheReadInputTokens") or 0)
        write = int(u.get("cacheWriteInputTokens") or 0)
        by_ttl = {d.get("ttl"): int(d.get("inputTokens") or 0) for d in (u.get("cacheDetails") or [])}
        state = observed_cache_state(read, write) if status == "ok" else "none"
        now = self.clock.now()
        j = job if job is not None and job.job_id is not None else None
        a = Attempt(
            arm=arm.name, session=r.index, turn=0, attempt=1, intended=r.intended, start=r.intended,
            first_token=None, end=max(now, r.intended), status=status, error_code=code, model_id=r.req.model_id,
            profile=arm.profile, region=None, input_tokens=int(u.get("inputTokens") or 0),
            output_tokens=int(u.get("outputTokens") or 0), cache_read=read, cache_write=write,
            cache_write_5m=by_ttl.get("5m", 0), cache_write_1h=by_ttl.get("1h", 0),
            # loadgen does not predict a batch job's cache: the observation stands for both
            cache_state=state, cache_predicted=state, cost_usd=costs["total"], wall_start=r.wall,
            stop_reason=stop_reason, message=message,
            batch_status=j.status if j is not None else "NotSubmitted",
            batch_job=j.job_id if j is not None else None,
            batch_submit=round(j.submit_t, 6) if j is not None and j.submit_t is not None else None,
            queue_wait_s=(round(j.begun_t - j.submit_t, 6)
                          if j is not None and j.begun_t is not None and j.submit_t is not None else None),
            job_s=round(j.duration_s, 6) if j is not None and j.duration_s is not None else None,
            cost_stacked_usd=round(stacked, 9), cost_unstacked_usd=round(unstacked, 9),
        )
        host.sink(a, costs)
