"""InProcessTransport: the emulator's model called directly, its latency waited on the clock.

The `Transport` `loadgen simulate` uses. No sockets, no JSON: `EmulatorModel.begin()`
decides the request and returns a Plan (or a BedrockError); this transport sleeps on
the clock until the moment a Bedrock client talking to the emulator's HTTP server
would see the outcome, and returns the same `Outcome` BedrockTransport would build
from that response. What "the same" means, case by case, mirrors
loadgen/emulator/server.py (which paces a Plan over HTTP) and loadgen/engine/transport.py
(which turns the wire into an Outcome):

  ok, Converse         first token = end = start + duration
  ok, ConverseStream   first token = when the first contentBlockDelta is written:
                       at ttft when a second delta follows later, else with the
                       final events at start + duration (the server batches events
                       due together into one write)
  BedrockError         after its delay_s; HTTP status and code as the server sends
                       them; in a stream (stream_errors_in_band) an exception event
                       after HTTP 200, the code in HTTP spelling (ThrottlingException)
  mid-stream fault     after `after_deltas` deltas, at the last delivered delta's time
  dropped connection   at the time the server drops it: Converse "ConnectionError",
                       a stream "ConnectionError" too (BedrockTransport's code for both)
  timeout              an attempt whose outcome would come after start + timeout ends
                       there as status timeout, code ClientTimeout (as BedrockTransport's
                       deadline scope); the timeout is enforced by arithmetic on the plan,
                       so it is exact on any clock

One `clock.sleep_until` per attempt; `model.finish()` corrects the quota charge at the
end, as the server does, with the output tokens actually delivered. The plan fixes the
first-token time in advance, so `on_first_token` is called before the sleep with that
(future) time: the runner's cache model applies it only from then on.
"""

from __future__ import annotations

import math
import random
from typing import Any

from loadgen.engine.clock import Clock
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.ids import uuid4_text
from loadgen.emulator.model import EmulatorModel, Plan
from loadgen.catalog.tokens import CHARS_PER_TOKEN, count_tokens
from loadgen.engine.transport import FirstToken, Outcome, normalize_code, status_for


class InProcessTransport:
    """Calls `model` in this process and waits its modelled latency on `clock` (scenario seconds).

    Use it with a VirtualClock: on a WarpClock the requesting task is a participant,
    so its latency sleep would let the clock jump over the response time.
    `rng` seeds the request ids of errors (the server uses random uuid4s there).
    """

    def __init__(self, model: EmulatorModel, clock: Clock, *, rng: random.Random | None = None) -> None:
        self._model = model
        self._clock = clock
        self._ids = rng or random.Random(0)
        self._in_band = bool(model.config.stream_errors_in_band)

    def _error_id(self) -> str:
        return uuid4_text(self._ids.getrandbits(128))

    async def call(self, params: dict[str, Any], *, stream: bool, timeout: float,
                   on_first_token: FirstToken | None = None, draw_key: str | None = None) -> Outcome:
        clock = self._clock
        start = clock.now()
        # params is the body as sent plus modelId, which request parsing never reads (it reads
        # only the members it knows, as Bedrock's body has no modelId): no copy without it
        r = self._model.begin(params.get("modelId", ""), params, stream=stream, draw_key=draw_key)
        deadline = start + timeout
        if isinstance(r, BedrockError):
            return await self._error(r, start, deadline, stream)
        plan: Plan = r
        delivered = 0
        try:
            out, at, delivered = _plan_outcome(plan, start, stream)
            if at > deadline:
                # the caller gives up first: what it had seen by then, as a timeout. A
                # stream's headers (request id, Region) arrive at once; Converse's with the body.
                ft = out.first_token if out.first_token is not None and out.first_token <= deadline else None
                delivered = _tokens_by(plan, deadline - start) if stream else 0
                out = Outcome(status="timeout", start=start, end=deadline, first_token=ft,
                              error_code="ClientTimeout", message=f"no complete response within {timeout:g} s")
                if stream:
                    out.region, out.request_id, out.http_status = plan.served_region, plan.request_id, 200
                    out.delivered_tokens = _delivered_by(plan, deadline - start)
                at = deadline
            if out.first_token is not None and on_first_token is not None:
                on_first_token(out.first_token)
            await clock.sleep_until(at)
            out.end = clock.now()
            return out
        finally:
            self._model.finish(plan, output_tokens=delivered)

    async def _error(self, r: BedrockError, start: float, deadline: float, stream: bool) -> Outcome:
        at = start + r.delay_s
        if at > deadline:
            await self._clock.sleep_until(deadline)
            return Outcome(status="timeout", start=start, end=self._clock.now(), error_code="ClientTimeout",
                           message=f"no complete response within {deadline - start:g} s")
        if r.delay_s > 0:
            await self._clock.sleep_until(at)
        in_band = stream and r.in_band(self._in_band)
        code = normalize_code(r.code)
        return Outcome(status=status_for(code), start=start,
                       end=self._clock.now(), error_code=code, message=r.message[:300],
                       region=r.served_region, request_id=self._error_id(),
                       http_status=200 if in_band else r.status, quota=r.quota or None)


def _plan_outcome(plan: Plan, start: float, stream: bool) -> tuple[Outcome, float, int]:
    """(outcome without its end, scenario time it is complete, output tokens delivered)."""
    fault = plan.fault
    n = plan.usage.output_tokens
    chunk = plan.chunk_tokens
    tps = plan.tokens_per_s
    ttft = start + plan.ttft_s
    done = start + plan.duration_s
    if fault is not None:
        k = fault.after_deltas if stream else 0
        # the server writes what was delivered at the last delivered delta's time (ttft if none)
        at = ttft + ((k - 1) * chunk / tps if k > 1 and tps > 0 else 0.0)
        out = Outcome(status="error", start=start, end=0.0, first_token=ttft if k > 0 else None,
                      region=plan.served_region, request_id=plan.request_id, http_status=200)
        if fault.kind == "reset":
            out.error_code = "ConnectionError"  # BedrockTransport's code for any dropped connection
            if stream:
                out.message = "Response payload is not completed (the connection was dropped mid-stream)"
            else:
                out.message = "Connection was closed before we received a valid response"
                out.first_token = out.http_status = out.request_id = out.region = None
        else:
            out.error_code = normalize_code(fault.code)
            out.message = fault.message[:300]
            out.status = status_for(out.error_code)
        out.delivered_tokens = min(n, k * chunk)
        return out, at, min(n, k * chunk)
    text = plan.text
    if stream:
        n_deltas = -(-len(text) // (chunk * CHARS_PER_TOKEN))
        first = ttft if n_deltas >= 2 and tps > 0 else (done if n_deltas or plan.tool_use else None)
    else:
        first = done
    out = Outcome("ok", start, 0.0, first_token=first, usage=plan.usage.to_wire(), region=plan.served_region,
                  request_id=plan.request_id, stop_reason=plan.stop_reason, text=text, http_status=200,
                  delivered_tokens=n if stream else 0)
    return out, done, n


def _delivered_by(plan: Plan, offset: float) -> int:
    """Output tokens in the deltas a stream client holds `offset` seconds after the start.
    The server writes each delta at its time except the last, which leaves with the final
    events at the end (see the module doc), so a stream cut short never holds the last."""
    deltas = plan.deltas()
    return sum(count_tokens(text) for t, text in deltas[:-1] if t <= offset)


def _tokens_by(plan: Plan, offset: float) -> int:
    """Output tokens generated by `offset` seconds after the start (for a cut-short charge)."""
    if offset < plan.ttft_s:
        return 0
    if plan.tokens_per_s <= 0:
        return plan.usage.output_tokens
    return min(plan.usage.output_tokens, 1 + int(math.floor((offset - plan.ttft_s) * plan.tokens_per_s)))
