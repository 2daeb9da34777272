"""The `bedrock` control plane's HTTP routes (rest-json), beside bedrock-runtime's on the
same port: the two services' URL paths are disjoint in botocore's models (bedrock-runtime
serves /model/{id}/..., /async-invoke, /guardrail...; bedrock's paths start /model-...,
/inference-profiles, /foundation-models, ... : none under /model/).

  POST /model-invocation-job                        CreateModelInvocationJob
  GET  /model-invocation-job/{jobIdentifier}        GetModelInvocationJob
  POST /model-invocation-job/{jobIdentifier}/stop   StopModelInvocationJob
  GET  /model-invocation-jobs                       ListModelInvocationJobs
  GET  /inference-profiles[?type=&maxResults=&nextToken=]   ListInferenceProfiles
  GET  /inference-profiles/{inferenceProfileIdentifier}     GetInferenceProfile
  GET  /foundation-models[?byProvider=...]          ListFoundationModels
  GET  /foundation-models/{modelIdentifier}         GetFoundationModel

Errors carry `x-amzn-ErrorType` and `{"message"}`, so botocore raises the modeled
exception (ValidationException, ResourceNotFoundException, ConflictException,
ServiceQuotaExceededException). The caller's Region comes from the SigV4 credential
scope, as on the runtime routes. Job-store calls run in worker threads: they block on S3.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import uuid
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from loadgen.emulator import profiles_api
from loadgen.emulator.batch import ControlError, JobStore, invalid
from loadgen.emulator.batch_requests import JOB_IDENTIFIER, JobRequest, RequestInvalid, job_wire
from loadgen.emulator.server import caller_region

_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
# ModelInvocationJobStatus, botocore's order
STATUSES = ("Submitted", "InProgress", "Completed", "Failed", "Stopping", "Stopped", "PartiallyCompleted",
            "Expired", "Validating", "Scheduled")
# wall seconds between the ticker's advance() calls: outputs appear in S3 without a poll
TICK_S = 0.1
_CONTROL_KEY = web.AppKey("control_plane", object)


class ControlPlane:
    """Serves `store` (batch jobs) and the catalog's profiles/models; `region`: the
    caller's Region for unsigned requests."""

    def __init__(self, store: JobStore, region: str = "us-east-1", *, ticker: bool = True) -> None:
        self.store = store
        self.region = region
        self.ticker = ticker

    def install(self, app: web.Application) -> None:
        """Add the routes (before the application's catch-all) and the ticker task."""
        app[_CONTROL_KEY] = self
        r = app.router
        r.add_post("/model-invocation-job", self._create)
        r.add_post(r"/model-invocation-job/{jobIdentifier:.+}/stop", self._stop)
        r.add_get(r"/model-invocation-job/{jobIdentifier:.+}", self._get)
        r.add_get("/model-invocation-jobs", self._list)
        r.add_get("/inference-profiles", self._list_profiles)
        r.add_get(r"/inference-profiles/{id:.+}", self._get_profile)
        r.add_get("/foundation-models", self._list_models)
        r.add_get(r"/foundation-models/{id:.+}", self._get_model)
        if self.ticker:
            app.cleanup_ctx.append(self._tick)

    async def _tick(self, app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(TICK_S)
                await asyncio.to_thread(self.store.advance)

        task = asyncio.get_running_loop().create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    # -- plumbing --------------------------------------------------------------

    def _region(self, request: web.Request) -> str:
        return caller_region(request.headers.get("Authorization")) or self.region

    async def _call(self, fn: Callable[[], Any]) -> web.Response:
        rid = str(uuid.uuid4())
        try:
            out = await asyncio.to_thread(fn)
        except RequestInvalid as e:
            return _error(invalid(str(e)), rid)
        except ControlError as e:
            return _error(e, rid)
        return web.Response(body=json.dumps(out).encode(),
                            headers={"x-amzn-RequestId": rid, "Content-Type": "application/json"})

    # -- batch jobs -------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.Response:
        region = self._region(request)
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None

        def create() -> dict:
            job = self.store.create(JobRequest.parse(body), region)
            return {"jobArn": job.arn}
        return await self._call(create)

    async def _get(self, request: web.Request) -> web.Response:
        region, ident = self._region(request), _job_identifier(request)
        return await self._call(lambda: job_wire(self.store.get(ident(), region), self.store.iso))

    async def _stop(self, request: web.Request) -> web.Response:
        region, ident = self._region(request), _job_identifier(request)

        def stop() -> dict:
            self.store.stop(ident(), region)
            return {}
        return await self._call(stop)

    async def _list(self, request: web.Request) -> web.Response:
        region, q = self._region(request), request.query

        def listing() -> dict:
            jobs = self.store.list(region)
            status = q.get("statusEquals")
            if status is not None and status not in STATUSES:
                raise invalid(f"statusEquals: expected one of {', '.join(STATUSES)}, got {status!r}")
            after, before = _time(q, "submitTimeAfter"), _time(q, "submitTimeBefore")
            if q.get("sortBy", "CreationTime") != "CreationTime":
                raise invalid(f"sortBy: expected CreationTime, got {q['sortBy']!r}")
            order = q.get("sortOrder", "Descending")  # ASSUMPTION: newest first by default
            if order not in ("Ascending", "Descending"):
                raise invalid(f"sortOrder: expected Ascending or Descending, got {order!r}")
            wall = self.store.wall_epoch
            picked = [j for j in jobs
                      if (status is None or j.status == status)
                      and q.get("nameContains", "") in j.req.job_name
                      and (after is None or wall + j.submit_t > after)
                      and (before is None or wall + j.submit_t < before)]
            if order == "Descending":
                picked.reverse()
            page, token = _page(picked, q)
            out: dict[str, Any] = {"invocationJobSummaries": [job_wire(j, self.store.iso) for j in page]}
            if token:
                out["nextToken"] = token
            return out
        return await self._call(listing)

    # -- profiles and models ----------------------------------------------------

    async def _list_profiles(self, request: web.Request) -> web.Response:
        region, q = self._region(request), request.query

        def listing() -> dict:
            page, token = _page(profiles_api.list_profiles(region, q.get("type")), q)
            return {"inferenceProfileSummaries": page, **({"nextToken": token} if token else {})}
        return await self._call(listing)

    async def _get_profile(self, request: web.Request) -> web.Response:
        region, ident = self._region(request), request.match_info["id"]
        return await self._call(lambda: profiles_api.get_profile(ident, region))

    async def _list_models(self, request: web.Request) -> web.Response:
        region, q = self._region(request), dict(request.query)
        return await self._call(lambda: {"modelSummaries": profiles_api.list_models(region, q)})

    async def _get_model(self, request: web.Request) -> web.Response:
        region, ident = self._region(request), request.match_info["id"]
        return await self._call(lambda: {"modelDetails": profiles_api.get_model(ident, region)})


def _job_identifier(request: web.Request) -> Callable[[], str]:
    """The {jobIdentifier} label (ARN or 12-character id, botocore's pattern), checked in
    the worker so its ValidationException takes the same path as every other error."""
    ident = request.match_info["jobIdentifier"]

    def check() -> str:
        if not JOB_IDENTIFIER.fullmatch(ident):
            raise invalid(f"1 validation error detected: Value {ident!r} at 'jobIdentifier' failed to satisfy "
                          f"constraint: Member must satisfy regular expression pattern: {JOB_IDENTIFIER.pattern}")
        return ident
    return check


def _time(q: Any, key: str) -> float | None:
    """An iso8601 query timestamp (botocore sends 2024-01-01T00:00:00Z) as Unix seconds."""
    v = q.get(key)
    if v is None:
        return None
    try:
        return dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise invalid(f"{key}: expected an ISO 8601 timestamp, got {v!r}") from None


def _page(items: list, q: Any) -> tuple[list, str | None]:
    """One page of `items` by maxResults (1..1000; ASSUMPTION: 1000 when omitted) and an
    opaque nextToken (the offset, encoded)."""
    raw = q.get("maxResults", "1000")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= 1000:
        raise invalid(f"maxResults: expected an integer from 1 to 1000, got {raw!r}")
    start = 0
    if "nextToken" in q:
        try:
            start = int(base64.urlsafe_b64decode(q["nextToken"].encode()).decode().removeprefix("offset:"))
        except ValueError:
            raise invalid("The nextToken is not valid.") from None
    end = start + n
    token = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < len(items) else None
    return items[start:end], token


def _error(e: ControlError, rid: str) -> web.Response:
    return web.Response(status=e.status, body=json.dumps({"message": e.message}).encode(),
                        headers={"x-amzn-RequestId": rid, "Content-Type": "application/json",
                                 "x-amzn-ErrorType": e.code + _ERROR_TYPE_SUFFIX})


__all__ = ["ControlPlane", "STATUSES"]
