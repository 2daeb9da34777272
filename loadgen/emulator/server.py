"""The emulator's HTTP shell: Bedrock Runtime's Converse wire protocol over aiohttp.

  POST /model/{modelId}/converse          JSON response
  POST /model/{modelId}/converse-stream   application/vnd.amazon.eventstream

The shell only translates: EmulatorModel decides everything (loadgen.emulator.model),
and this module paces the Plan on the injected clock with `await clock.sleep_until(t)`
(a stream's body as stream.stream_schedule lays it out), so under a WarpClock the
modelled latency passes in scenario time. Start the server outside any clock driver
(a load-driving task; `loadgen run` starts the server before its runner): handler tasks
inherit the context the server was started in, and their latency sleeps must not count
as load-driving sleeps that a WarpClock jumps over (tests/test_emulator_clock.py). Every response
carries `x-amzn-RequestId` and `x-loadgen-served-region`; a throttle by one of the
emulator's limits names it in `x-loadgen-quota` (see errors.QUOTA_KINDS).

Every response that has headers also says when, in modelled scenario seconds after the
request start, its first content delta and its end leave the server (MODELLED_* below:
the time a client with zero transport overhead would see them). A client on a warp
clock uses them to keep its latency free of the warp factor: modelled time plus the real
overhead it measured, unscaled (loadgen/engine/transport.py). A stream's headers go out before
its body, so the times are computed from the write schedule before the first write.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from functools import lru_cache
from typing import Any, AsyncIterator

from aiohttp import web

from loadgen.emulator import eventstream
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.plan import Plan
from loadgen.emulator.stream import stream_schedule

SERVED_REGION_HEADER = "x-loadgen-served-region"
QUOTA_HEADER = "x-loadgen-quota"
MODELLED_FIRST_TOKEN_HEADER = "x-loadgen-modelled-first-token-s"
MODELLED_END_HEADER = "x-loadgen-modelled-end-s"
# A request header only loadgen sends, to its emulator: the attempt's name for its own
# random draws (emulator/draws.py); without it the shared stream is used
DRAW_KEY_HEADER = "x-loadgen-draw-key"
# How long `loadgen emulator` (and run's in-process emulator) waits on shutdown for
# requests in flight before cancelling them: a load target is stopped mid-load on
# purpose, and a modelled stream can last minutes (aiohttp's default wait is 60 s).
SHUTDOWN_GRACE_S = 0.5
_ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
# The largest request body served (bytes), given to aiohttp as client_max_size. ASSUMPTION:
# Bedrock's own limit and its error for a larger body are unsourced; a larger body gets the
# shape every Bedrock error has (JSON ValidationException with x-amzn-ErrorType), not
# aiohttp's bare 413 text page.
MAX_BODY_BYTES = 64 * 1024 * 1024
_JSON = "application/json"
_EVENTSTREAM = "application/vnd.amazon.eventstream"

_MODEL_KEY = web.AppKey("model", EmulatorModel)
_CLOCK_KEY = web.AppKey("clock", object)
_LIMIT_KEY = web.AppKey("max_body", int)


def _headers(request_id: str, region: str, content_type: str, *, end_s: float | None = None,
             first_token_s: float | None = None) -> dict[str, str]:
    """Response headers; end_s / first_token_s: modelled offsets (scenario s after the start)."""
    h = {"x-amzn-RequestId": request_id, SERVED_REGION_HEADER: region, "Content-Type": content_type}
    if end_s is not None:
        h[MODELLED_END_HEADER] = repr(float(end_s))
    if first_token_s is not None:
        h[MODELLED_FIRST_TOKEN_HEADER] = repr(float(first_token_s))
    return h


_CONVERSE_HEAD = b'{"output":{"message":{"role":"assistant","content":[{"text":'
_USAGE = (b'}]}},"stopReason":%s,"usage":{"inputTokens":%d,"outputTokens":%d,"totalTokens":%d,'
          b'"cacheReadInputTokens":%d,"cacheWriteInputTokens":%d')


_CACHED_TEXT_CHARS = 4096   # longer texts are encoded each time (keeps the cache under ~2 MB)


@lru_cache(maxsize=256)
def _cached_json_str(text: str) -> bytes:
    return json.dumps(text).encode()


def _json_str(text: str) -> bytes:
    """A JSON string literal: the reply texts and stop reasons repeat (one filler text cut
    to each output length), so the shorter ones are encoded once."""
    return _cached_json_str(text) if len(text) <= _CACHED_TEXT_CHARS else json.dumps(text).encode()


def converse_json(plan: Plan) -> bytes:
    """The Converse response body of `plan`: the bytes of
    `json.dumps(plan.response_body(), separators=(",", ":"))`, put together directly for a
    text reply (every load-test request: no dict building, no encoder pass over it; the
    server's hottest path after aiohttp's own work). tests/test_emulator_server.py pins
    the equality."""
    u = plan.usage
    if plan.tool_use is not None or not all(type(n) is int for n in u[:4]):
        return json.dumps(plan.response_body(), separators=(",", ":")).encode()
    parts = [_CONVERSE_HEAD, _json_str(plan.text),
             _USAGE % (_json_str(plan.stop_reason), u.input_tokens, u.output_tokens, u.total_tokens, u.cache_read,
                       u.cache_write)]
    if u.cache_details:
        parts.append(b',"cacheDetails":' + json.dumps([{"ttl": t, "inputTokens": n} for t, n in u.cache_details],
                                                       separators=(",", ":")).encode())
    parts.append(b'},"metrics":{"latencyMs":%d}' % plan.latency_ms)
    if plan.service_tier:
        parts.append(b',"serviceTier":{"type":%s}' % _json_str(plan.service_tier))
    parts.append(b"}")
    return b"".join(parts)


def _error_headers(err: BedrockError, request_id: str, content_type: str) -> dict[str, str]:
    h = _headers(request_id, err.served_region, content_type, end_s=err.delay_s)
    if err.quota:
        h[QUOTA_HEADER] = err.quota
    return h


def _error_response(err: BedrockError, request_id: str) -> web.Response:
    h = _error_headers(err, request_id, _JSON)
    h["x-amzn-ErrorType"] = err.code + _ERROR_TYPE_SUFFIX
    return web.Response(status=err.status, body=json.dumps({"message": err.message}).encode(), headers=h)


_TOO_LARGE = object()


async def _read_body(request: web.Request) -> Any:
    """The JSON body; None if it is not JSON; _TOO_LARGE past MAX_BODY_BYTES."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _TOO_LARGE
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return None


_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


def caller_region(authorization: str | None) -> str | None:
    """The Region of a SigV4 request's credential scope
    (`AWS4-HMAC-SHA256 Credential=AKID/20261202/eu-west-1/bedrock/aws4_request, ...`),
    which a client signs for the Region of the endpoint it calls; None without one."""
    m = _CREDENTIAL_SCOPE.search(authorization or "")
    return m.group(1) if m else None


def _drop_connection(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _begin(request: web.Request, *, stream: bool) -> tuple[EmulatorModel, Any, Plan | BedrockError]:
    """The shared start of both handlers: parse the body, ask the model, wait an error's delay."""
    model: EmulatorModel = request.app[_MODEL_KEY]
    clock = request.app[_CLOCK_KEY]
    body = await _read_body(request)
    # Bedrock's endpoint is per Region: the caller's is the one it signed for
    region = caller_region(request.headers.get("Authorization")) or model.region
    if body is _TOO_LARGE:
        return model, clock, BedrockError(400, "ValidationException",
                                          f"The request body is larger than {request.app[_LIMIT_KEY]} bytes, "
                                          "the most the emulator accepts.", served_region=region)
    if body is None:
        return model, clock, BedrockError(400, "ValidationException", "The request body is not valid JSON.",
                                          served_region=region)
    r = model.begin(request.match_info["modelId"], body, stream=stream, region=region,
                    draw_key=request.headers.get(DRAW_KEY_HEADER))
    if isinstance(r, BedrockError) and r.delay_s > 0:
        await clock.sleep_until(clock.now() + r.delay_s)
    return model, clock, r


class _ClientGone(Exception):
    """The client closed the connection (timeout, Ctrl-C) or a reset fault dropped it."""


async def _converse(request: web.Request) -> web.StreamResponse:
    model, clock, r = await _begin(request, stream=False)
    if isinstance(r, BedrockError):
        return _error_response(r, str(uuid.uuid4()))
    plan: Plan = r
    try:
        if plan.fault is not None and plan.fault.kind == "reset":
            await clock.sleep_until(plan.start + plan.ttft_s)
            return _dropped(request)
        await clock.sleep_until(plan.start + plan.duration_s)
        return web.Response(body=converse_json(plan), headers=_headers(plan.request_id, plan.served_region, _JSON,
                                                                       end_s=plan.duration_s,
                                                                       first_token_s=plan.duration_s))
    finally:
        # also when the handler is cancelled (server shut down mid-request): the quota
        # charge must not stay at its reservation
        model.finish(plan)


def _dropped(request: web.Request, resp: web.StreamResponse | None = None) -> web.StreamResponse:
    """Drop the TCP connection (the reset fault) and give aiohttp something to finish: it
    finds the transport closed and ends the request without logging (finish_response
    treats a ConnectionError as the client having gone)."""
    _drop_connection(request)
    return resp if resp is not None else web.Response(status=500)


async def _write(resp: web.StreamResponse, data: bytes) -> None:
    """resp.write that turns a vanished client into _ClientGone. A load target sees clients
    go away all the time (client timeouts, Ctrl-C): that is not a server error, and
    aiohttp would log each one with a traceback ("Error handling request")."""
    try:
        await resp.write(data)
    except ConnectionError as e:  # aiohttp's ClientConnectionResetError is one
        raise _ClientGone() from e


async def _converse_stream(request: web.Request) -> web.StreamResponse:
    model, clock, r = await _begin(request, stream=True)
    resp = web.StreamResponse(status=200)
    try:
        if isinstance(r, BedrockError):
            return await _stream_error(request, model, r, resp)
        plan: Plan = r
        delivered = 0
        try:
            writes, end, drop = stream_schedule(plan)
            first = next((w.offset for w in writes if w.has_delta), None)
            resp.headers.update(_headers(plan.request_id, plan.served_region, _EVENTSTREAM,
                                         end_s=end, first_token_s=first))
            await resp.prepare(request)
            for w in writes:
                # counted before the sleep, as the model generated them by then
                delivered = w.tokens
                await clock.sleep_until(plan.start + w.offset)
                await _write(resp, w.data)
            await clock.sleep_until(plan.start + end)
            if drop:
                return _dropped(request, resp)
            await resp.write_eof()
            return resp
        finally:
            # runs on a vanished client and on cancellation (server shut down) as well
            model.finish(plan, output_tokens=delivered)
    except (_ClientGone, ConnectionError):
        # the client went away; nothing to send. aiohttp's finish_response ends it quietly.
        return resp if resp.prepared else web.Response(status=499)


async def _stream_error(request: web.Request, model: EmulatorModel, r: BedrockError,
                        resp: web.StreamResponse) -> web.StreamResponse:
    if not r.in_band(model.config.stream_errors_in_band):
        return _error_response(r, str(uuid.uuid4()))
    resp.headers.update(_error_headers(r, str(uuid.uuid4()), _EVENTSTREAM))
    await resp.prepare(request)
    await _write(resp, eventstream.exception(r.stream_event_type, r.message))
    await resp.write_eof()
    return resp


async def _count_tokens(request: web.Request) -> web.Response:
    """CountTokens: 200 `{"inputTokens": N}` (botocore CountTokensResponse) or Bedrock's error."""
    model: EmulatorModel = request.app[_MODEL_KEY]
    body = await _read_body(request)
    r = (BedrockError(400, "ValidationException", "The request body is not valid JSON.", served_region=model.region)
         if body is None else model.count_tokens(request.match_info["modelId"], body))
    rid = str(uuid.uuid4())
    if isinstance(r, BedrockError):
        return _error_response(r, rid)
    return web.Response(body=json.dumps({"inputTokens": r}).encode(),
                        headers=_headers(rid, model.region, _JSON))


async def _unknown(request: web.Request) -> web.Response:
    model: EmulatorModel = request.app[_MODEL_KEY]
    err = BedrockError(404, "UnknownOperationException",
                       f"The emulator does not serve {request.method} {request.path} (bedrock-runtime: "
                       "/model/{modelId}/converse, /converse-stream, /count-tokens; bedrock: batch jobs, "
                       "inference profiles, foundation models)", served_region=model.region)
    return _error_response(err, str(uuid.uuid4()))


def build_app(model: EmulatorModel, clock: Any, control: Any = None) -> web.Application:
    """The aiohttp application serving `model`, pacing its plans on `clock`; `control`:
    a control_plane.ControlPlane whose `bedrock` routes join (None: bedrock-runtime only)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_LIMIT_KEY] = MAX_BODY_BYTES
    app[_MODEL_KEY] = model
    app[_CLOCK_KEY] = clock
    # modelId may be an ARN holding "/" (botocore sends it %2F-encoded; aiohttp decodes)
    app.router.add_post(r"/model/{modelId:.+}/converse", _converse)
    app.router.add_post(r"/model/{modelId:.+}/converse-stream", _converse_stream)
    app.router.add_post(r"/model/{modelId:.+}/count-tokens", _count_tokens)
    if control is not None:
        control.install(app)
    app.router.add_route("*", r"/{tail:.*}", _unknown)
    return app


@contextlib.asynccontextmanager
async def serve(model: EmulatorModel, clock: Any, host: str = "127.0.0.1", port: int = 0,
                on_stop: Any = None, control: Any = None) -> AsyncIterator[str]:
    """Run the emulator in the current event loop; yields its URL (http://HOST:PORT).

    On exit, requests still in flight get SHUTDOWN_GRACE_S (wall seconds) to finish and
    are then cancelled, their connections closed; `on_stop(n)` is called first with the
    number of connections still open."""
    runner = web.AppRunner(build_app(model, clock, control), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
    except BaseException:
        # nothing was served: no "stopping" line (on_stop), only the caller's bind error
        await runner.cleanup()
        raise
    try:
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        yield f"http://{shown}:{bound[1]}"
    finally:
        if on_stop is not None:
            on_stop(len(runner.server.connections) if runner.server is not None else 0)
        await runner.cleanup()
