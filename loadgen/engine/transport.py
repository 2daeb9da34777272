"""Bedrock calls through aiobotocore's real bedrock-runtime client.

One client per run, SigV4 and botocore's parsers included. The transport times
each call on the run's clock (send, first content delta, end) and maps every
outcome to a status; it never retries (botocore's retries are off:
`total_max_attempts: 1`; plain `max_attempts: 1` would still retry once). The
runner owns retries, so every attempt is seen and recorded.
"""

from __future__ import annotations

import contextlib
import contextvars
import platform
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Protocol

import aiohttp
import anyio
import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    EventStreamError,
    NoCredentialsError,
    ReadTimeoutError,
)

from loadgen._version import __version__
from loadgen.engine import release
from loadgen.engine.clock import Clock
from loadgen.catalog.tokens import count_tokens

# Headers only loadgen's emulator sends (names as in loadgen/emulator/server.py; a test
# pins them equal). Bedrock sends none of them, so against AWS nothing below changes.
SERVED_REGION_HEADER = "x-loadgen-served-region"
QUOTA_HEADER = "x-loadgen-quota"
MODELLED_FIRST_TOKEN_HEADER = "x-loadgen-modelled-first-token-s"
MODELLED_END_HEADER = "x-loadgen-modelled-end-s"
# ... and the one loadgen sends to its emulator only (never to AWS): the attempt's name for
# its random draws, so every arm draws alike for the same attempt (emulator/draws.py)
DRAW_KEY_HEADER = "x-loadgen-draw-key"
_DRAW_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("loadgen_draw_key", default=None)

# Bedrock error codes (HTTP spelling: in-stream codes are normalised first, see
# normalize_code) that mean "over quota, slow down" (HTTP 429), and server-side failures.
THROTTLE_CODES = frozenset({"ThrottlingException"})
SERVER_ERROR_CODES = frozenset({
    "InternalServerException", "ServiceUnavailableException", "ModelNotReadyException",
    "ModelStreamErrorException", "ModelErrorException", "ModelTimeoutException",
})


class TargetError(Exception):
    """The target cannot be used at all (no credentials, no endpoint): exit 3."""


@dataclass
class Outcome:
    """What one attempt returned. Times are scenario seconds on the run's clock."""

    status: str                      # ok | throttled | error | timeout
    start: float
    end: float
    first_token: float | None = None
    error_code: str | None = None
    message: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    region: str | None = None
    request_id: str | None = None
    stop_reason: str | None = None
    text: str = ""
    http_status: int | None = None
    quota: str | None = None         # the emulator's x-loadgen-quota on a throttle ("tpm us-east-1")
    # the emulator's modelled offsets (scenario s after the start) of the first content
    # delta and the end, from its x-loadgen-modelled-* headers; None elsewhere
    modelled_first_token: float | None = None
    modelled_end: float | None = None
    # output tokens in the stream's content deltas that arrived (loadgen.catalog.tokens rule), whatever
    # the outcome: what a stream that failed part-way had delivered (no usage comes then)
    delivered_tokens: int = 0

    @property
    def retryable_kind(self) -> str | None:
        """'throttled', '5xx' or 'timeout' when a retry policy may retry this outcome."""
        if self.status == "throttled":
            return "throttled"
        if self.status == "timeout":
            return "timeout"
        if self.status == "error" and (
            self.error_code in SERVER_ERROR_CODES or (self.http_status or 0) >= 500
            or self.error_code in ("ConnectionError",)
        ):
            return "5xx"
        return None


FirstToken = Callable[[float], None]


class Transport(Protocol):
    async def call(self, params: dict[str, Any], *, stream: bool, timeout: float,
                   on_first_token: FirstToken | None = None, draw_key: str | None = None) -> Outcome:
        """Send one Converse request; `timeout` in scenario seconds. `draw_key` names the
        attempt (`session:turn:attempt`, the same in every arm) for an emulator's random
        draws; other targets ignore it. `on_first_token(t)` is
        called once with the scenario time the response began (the first content delta of
        a stream), as soon as the transport knows it: the runner's cache model learns then
        that the request's prefixes are readable (a prompt-cache entry becomes available
        only once the response that wrote it has begun).

        A transport with a `prepare_ahead` attribute above 0 (scenario seconds) also takes
        `release_at=T, after_turns=K, on_release=f`: the runner calls it up to
        `prepare_ahead` before the request is due; the transport sends it at T, K
        event-loop turns later, stamps the outcome's start there and calls `f(start)`
        (also when it failed before reaching HTTP; engine/release.py)."""


def _add_draw_key(request: Any, **_: Any) -> None:
    """before-sign: the calling task's attempt name as a header (BedrockTransport.call sets
    it in the same task, so concurrent calls each send their own)."""
    key = _DRAW_KEY.get()
    if key is not None:
        request.headers[DRAW_KEY_HEADER] = key


def status_for(code: str | None) -> str:
    """The record status of a failed call with this (normalised) error code."""
    return "throttled" if code in THROTTLE_CODES else "error"


def normalize_code(code: str | None) -> str | None:
    """In-stream exceptions are named in camelCase (`throttlingException`); HTTP errors in
    PascalCase (`ThrottlingException`). Records use the HTTP spelling, so one code is one count."""
    return code[:1].upper() + code[1:] if code else code


def have_credentials() -> bool:
    """Whether the standard AWS credential chain finds anything (nothing is sent)."""
    return botocore.session.Session().get_credentials() is not None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def unwarp(out: Outcome, scale: float) -> None:
    """Make a warp-clock outcome's first token and end independent of the warp factor.

    On a warp clock scenario time runs `scale` x real time, so the real transport
    overhead of an attempt (HTTP, event loop, parsing: a few ms) would appear `scale`
    times over in its latency. The emulator says when, in modelled scenario time, it
    sent each thing (MODELLED_* headers); the server spent modelled/scale real seconds
    on it, so the real overhead is wall - modelled/scale, and the latency reported is
    modelled + overhead, the overhead counted once (unscaled), as a real-clock client
    would see it. Wall elapsed = scenario elapsed / scale: while a call is in flight
    its task is busy, so the warp clock does not jump (loadgen/engine/clock/warp.py).

    An event seen before its modelled time could have passed was not the one modelled
    (say, the connection dropped early): it keeps its clock time. A timeout keeps its
    deadline (timeouts are enforced on the warp clock). Outcomes without the headers
    (AWS, other endpoints) are left alone. Times in scenario seconds.
    """
    def fix(t: float, modelled: float) -> float:
        overhead = (t - out.start) / scale - modelled / scale  # real seconds
        return out.start + modelled + overhead if overhead >= 0 else t

    if out.first_token is not None and out.modelled_first_token is not None:
        out.first_token = fix(out.first_token, out.modelled_first_token)
    if out.status != "timeout" and out.modelled_end is not None:
        out.end = fix(out.end, out.modelled_end)
    if out.first_token is not None and out.first_token > out.end:
        out.first_token = out.end


def user_agent(session: Any) -> str:
    """The User-Agent every request of a client sends, built once per client.

    botocore rebuilds its default User-Agent (about a dozen components, feature ids
    included) twice per call, ~90 us of CPU per request on one core; a string given
    in the client's Config (`user_agent`, public) is sent as it is. This one names
    loadgen and the same SDK, Python and OS facts (botocore appends the session's
    `botocore/<version>`); it leaves out botocore's per-call feature ids, which are
    AWS's telemetry and change nothing about the request.
    """
    return (f"loadgen/{__version__} {session.user_agent_name}/{session.user_agent_version} "
            f"Python/{platform.python_version()} {platform.system()}/{platform.release()}")


def client_config(session: Any, *, max_connections: int, read_timeout: float = 300.0) -> AioConfig:
    """The bedrock-runtime client's Config: botocore's retries off (the runner owns them),
    a connection per request in flight, and two switches that take per-call work off the
    generator's one core, both public Config options:

    - `parameter_validation=False`: botocore walks every request against the service
      model before sending it. loadgen builds its requests from a fixed shape, and the
      target validates them anyway (Bedrock, and the emulator, answer a malformed one
      with ValidationException, recorded as a failed attempt).
    - `user_agent`: built once (see `user_agent`).
    """
    return AioConfig(
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=max(10, max_connections),
        read_timeout=read_timeout,
        connect_timeout=10,
        tcp_keepalive=True,
        parameter_validation=False,
        user_agent=user_agent(session),
    )


class BedrockTransport:
    """aiobotocore `bedrock-runtime` client on a Clock. Use `async with BedrockTransport.open(...)`."""

    def __init__(self, client: Any, clock: Clock, *, draw_keys: bool = False) -> None:
        """`draw_keys`: send each attempt's name to the target (loadgen's emulator only)."""
        self._client = client
        self._clock = clock
        self._draw_keys = draw_keys
        self.prepare_ahead = release.lead(clock)  # scenario seconds (engine/release.py)
        # First of the before-send handlers (a caller's own hook then sees the request
        # as it goes out): every call's outcome is stamped where the request reaches HTTP.
        client.meta.events.register_first("before-send.bedrock-runtime", release.before_send(clock))
        if draw_keys:
            client.meta.events.register("before-sign.bedrock-runtime", _add_draw_key)

    @property
    def client(self) -> Any:
        """The aiobotocore client (for calls besides Converse, such as CountTokens)."""
        return self._client

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        clock: Clock,
        *,
        region: str,
        endpoint_url: str | None,
        max_connections: int,
        dummy_credentials: bool,
        read_timeout: float = 300.0,
    ) -> AsyncIterator["BedrockTransport"]:
        session = get_session()
        config = client_config(session, max_connections=max_connections, read_timeout=read_timeout)
        kwargs: dict[str, Any] = {"region_name": region, "config": config}
        if endpoint_url:
            kwargs["endpoint_url"] = endpoint_url
            if endpoint_url[:7].lower() == "http://":
                # Plain HTTP (the built-in emulator, a local endpoint): no TLS, so nothing to
                # verify. Otherwise aiobotocore loads the CA bundle into a TLS context anyway, in
                # a thread at the first request: ~25-30 ms of CPU and 40-100 ms before the run's
                # first request reaches the wire (measured, loaded machine). https endpoints
                # and AWS keep botocore's verification.
                kwargs["verify"] = False
        if dummy_credentials:
            # The emulator checks the SigV4 shape, not the secret; never real keys.
            kwargs.update(aws_access_key_id="loadgen-emulator", aws_secret_access_key="loadgen-emulator")
        else:
            creds = await session.get_credentials()
            if creds is None:
                raise TargetError(
                    "no AWS credentials found (standard chain: env vars, ~/.aws, SSO, instance role); "
                    "set them up or run against the emulator (the default target)"
                )
        async with session.create_client("bedrock-runtime", **kwargs) as client:
            # dummy credentials: loadgen's emulator (built in, or at --endpoint-url), which
            # takes draw keys; AWS is never sent one
            yield cls(client, clock, draw_keys=dummy_credentials)

    async def call(self, params: dict[str, Any], *, stream: bool, timeout: float,
                   on_first_token: FirstToken | None = None, release_at: float | None = None,
                   after_turns: int = 0, on_release: Callable[[float], None] | None = None,
                   draw_key: str | None = None) -> Outcome:
        # read by _add_draw_key while botocore builds this call (in this task)
        token = _DRAW_KEY.set(draw_key if self._draw_keys else None)
        try:
            # the clock learns a request is on the wire: a warp clock holding still between
            # requests flows again (loadgen/engine/clock/warp.py)
            with self._clock.in_flight():
                return await self._timed_call(params, stream=stream, timeout=timeout, on_first_token=on_first_token,
                                              release_at=release_at, after_turns=after_turns, on_release=on_release)
        finally:
            _DRAW_KEY.reset(token)

    async def _timed_call(self, params: dict[str, Any], *, stream: bool, timeout: float,
                          on_first_token: FirstToken | None = None, release_at: float | None = None,
                          after_turns: int = 0, on_release: Callable[[float], None] | None = None) -> Outcome:
        clock = self._clock
        now = clock.now()
        out = Outcome(status="error", start=now, end=0.0)
        passage = None if release_at is None else release.Release(release_at, after_turns, out, on_release)
        # the timeout counts from the intended start: a request held until then was not sent
        held = release_at - now if release_at is not None and release_at > now else 0.0
        no_credentials: NoCredentialsError | None = None
        try:
            # The timeout is in scenario seconds; on a warp clock real time runs `scale` slower.
            # (A bare deadline scope: anyio.fail_after adds a raise/catch we do not need.)
            with release.releasing(passage), \
                    anyio.CancelScope(deadline=anyio.current_time() + (held + timeout) / clock.scale) as scope:
                if stream:
                    await self._stream(params, out, on_first_token)
                else:
                    await self._converse(params, out)
            if scope.cancelled_caught:
                out.status, out.error_code = "timeout", "ClientTimeout"
                out.message = f"no complete response within {timeout:g} s"
        except EventStreamError as e:
            err = e.response.get("Error", {})
            out.error_code = normalize_code(err.get("Code"))
            out.message = (err.get("Message") or str(e))[:300]
            out.status = status_for(out.error_code)
        except ClientError as e:
            err = e.response.get("Error", {})
            self._meta(e.response, out)
            out.error_code = err.get("Code")
            out.message = (err.get("Message") or str(e))[:300]
            out.status = status_for(out.error_code)
        except ReadTimeoutError as e:
            out.status, out.error_code, out.message = "timeout", "ReadTimeout", str(e)[:300]
        except (EndpointConnectionError, ConnectionClosedError, ConnectionError, OSError, aiohttp.ClientError) as e:
            # aiohttp.ClientPayloadError is how a connection dropped mid-stream surfaces
            out.status, out.error_code, out.message = "error", "ConnectionError", str(e)[:300]
        except NoCredentialsError as e:
            no_credentials = e  # raised below, once a prepared call has reached its time
        except Exception as e:  # anything else is still an attempt that must be accounted for
            if isinstance(e, anyio.get_cancelled_exc_class()):
                raise
            out.status, out.error_code, out.message = "error", type(e).__name__, str(e)[:300]
        if passage is not None:
            # a target failure must reach the runner (exit 3) even if an abort lands while a
            # prepared call waits for its time here: that wait (<= PREPARE_AHEAD_S) is shielded
            with anyio.CancelScope(shield=no_credentials is not None):
                await release.settle(passage, clock)
        if no_credentials is not None:
            raise TargetError(str(no_credentials)) from no_credentials
        out.end = clock.now()
        if clock.scale != 1.0:
            unwarp(out, clock.scale)
        return out

    def _meta(self, resp: dict[str, Any], out: Outcome) -> None:
        meta = resp.get("ResponseMetadata", {})
        out.request_id = meta.get("RequestId")
        out.http_status = meta.get("HTTPStatusCode")
        headers = meta.get("HTTPHeaders") or {}
        out.region = headers.get(SERVED_REGION_HEADER)
        out.quota = headers.get(QUOTA_HEADER)
        out.modelled_first_token = _seconds(headers.get(MODELLED_FIRST_TOKEN_HEADER))
        out.modelled_end = _seconds(headers.get(MODELLED_END_HEADER))

    async def _converse(self, params: dict[str, Any], out: Outcome) -> None:
        resp = await self._client.converse(**params)
        out.first_token = self._clock.now()  # non-streaming: the first token arrives with the last
        self._meta(resp, out)
        out.usage = resp.get("usage", {})
        out.stop_reason = resp.get("stopReason")
        content = resp.get("output", {}).get("message", {}).get("content", [])
        out.text = "".join(b.get("text", "") for b in content)
        out.status = "ok"

    async def _stream(self, params: dict[str, Any], out: Outcome, on_first_token: FirstToken | None) -> None:
        resp = await self._client.converse_stream(**params)
        self._meta(resp, out)
        parts: list[str] = []
        tool_input: list[str] = []   # toolUse deltas (a tool call's JSON input, in pieces)
        try:
            async for event in resp["stream"]:
                delta = event.get("contentBlockDelta")
                if delta is not None:
                    if out.first_token is None:
                        out.first_token = self._clock.now()
                        if on_first_token is not None:
                            on_first_token(out.first_token)
                    d = delta.get("delta", {})
                    parts.append(d.get("text", ""))
                    tool_input.append(d.get("toolUse", {}).get("input", ""))
                elif "messageStop" in event:
                    out.stop_reason = event["messageStop"].get("stopReason")
                elif "metadata" in event:
                    out.usage = event["metadata"].get("usage", {})
        finally:
            # a timeout or reset leaves the body unread: release the connection now
            # (otherwise aiohttp warns "Unclosed connection" later)
            resp["stream"].close()
            # what arrived before any failure: billed output of a stream cut short
            out.delivered_tokens = count_tokens("".join(parts)) + count_tokens("".join(tool_input))
        out.text = "".join(parts)
        out.status = "ok"
