"""A fake Bedrock for runner tests: the real Runner on a VirtualClock, answers from a function.

Like httpx's `MockTransport`: `HandlerTransport(handler, clock)` is a loadgen Transport
that calls `handler(call)` for every attempt the runner sends and waits the reply's
modelled delay on the clock, so retries, backoff, in-flight bounds and cost limits run
through the real `Runner` with no emulator, no sockets and no wall time:

    def handler(call: Call) -> Reply:
        return throttle() if call.n % 3 == 0 else ok(after_s=2.0)

    run = run_virtual(SCENARIO_TOML, handler, limits=Limits(max_cost_usd=0.05))
    run.attempts   # every Attempt the runner recorded, in completion order
    run.calls      # every Call the transport saw, in send order

The transport times an attempt the way BedrockTransport does: status `timeout`,
code ClientTimeout, at the request deadline when the reply would come later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import anyio

from loadgen.engine.clock import VirtualClock
from loadgen.engine.runner import Limits, Runner
from loadgen.scenario import Scenario, loads
from loadgen.engine.transport import Outcome

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"

# What a small uncached Haiku request reports: 20 input tokens, 10 output tokens.
SMALL_USAGE: Mapping[str, int] = {"inputTokens": 20, "outputTokens": 10, "cacheReadInputTokens": 0,
                                  "cacheWriteInputTokens": 0}


@dataclass(frozen=True)
class Call:
    """One attempt as the fake Bedrock receives it. Times in scenario seconds."""

    n: int                     # 0-based, in send order over the whole run
    arm: str                   # from the arm's prefix ("[loadgen scenario=... arm=NAME]")
    params: Mapping[str, Any]  # the Converse keyword arguments, modelId included
    stream: bool
    timeout: float
    start: float


@dataclass(frozen=True)
class Reply:
    """What the fake Bedrock does with one call: after `after_s` scenario seconds, answer
    with `status` (and `usage` when ok), or raise `raises` instead."""

    status: str = "ok"                   # ok | throttled | error
    after_s: float = 1.0
    ttft_s: float | None = None          # first token, seconds after the send (default: with the end)
    usage: Mapping[str, Any] = field(default_factory=lambda: dict(SMALL_USAGE))
    error_code: str | None = None
    http_status: int | None = None
    raises: BaseException | None = None


def ok(after_s: float = 1.0, usage: Mapping[str, Any] | None = None, ttft_s: float | None = None) -> Reply:
    return Reply(after_s=after_s, usage=dict(usage if usage is not None else SMALL_USAGE), ttft_s=ttft_s)


def throttle(after_s: float = 0.05) -> Reply:
    return Reply(status="throttled", after_s=after_s, error_code="ThrottlingException", http_status=429)


def error(code: str, http_status: int, after_s: float = 0.1) -> Reply:
    """A Bedrock error response, e.g. error("ValidationException", 400)."""
    return Reply(status="error", after_s=after_s, error_code=code, http_status=http_status)


def raises(exc: BaseException, after_s: float = 0.0) -> Reply:
    return Reply(after_s=after_s, raises=exc)


_ARM = re.compile(r"\barm=([A-Za-z0-9._-]+)")


class HandlerTransport:
    """A loadgen Transport whose answers come from `handler(Call) -> Reply`, waited on `clock`."""

    def __init__(self, handler: Callable[[Call], Reply], clock: Any) -> None:
        self.handler = handler
        self.clock = clock
        self.calls: list[Call] = []
        self.in_flight: dict[str, int] = {}       # per arm, now
        self.max_in_flight: dict[str, int] = {}   # per arm, highest seen

    async def call(self, params: dict[str, Any], *, stream: bool, timeout: float,
                   on_first_token: Callable[[float], None] | None = None, draw_key: str | None = None) -> Outcome:
        clock = self.clock
        start = clock.now()
        m = _ARM.search(params["system"][0]["text"])
        arm = m.group(1) if m else ""
        c = Call(n=len(self.calls), arm=arm, params=params, stream=stream, timeout=timeout, start=start)
        self.calls.append(c)
        self.in_flight[arm] = self.in_flight.get(arm, 0) + 1
        self.max_in_flight[arm] = max(self.max_in_flight.get(arm, 0), self.in_flight[arm])
        try:
            r = self.handler(c)
            at, deadline = start + r.after_s, start + timeout
            if at > deadline:
                await clock.sleep_until(deadline)
                return Outcome(status="timeout", start=start, end=clock.now(), error_code="ClientTimeout",
                               message=f"no complete response within {timeout:g} s")
            first = start + (r.ttft_s if r.ttft_s is not None else r.after_s)
            if r.status == "ok" and on_first_token is not None:
                on_first_token(first)  # known in advance, as InProcessTransport does
            await clock.sleep_until(at)
            if r.raises is not None:
                raise r.raises
            end = clock.now()
            if r.status != "ok":
                return Outcome(status=r.status, start=start, end=end, error_code=r.error_code,
                               message=f"fake {r.error_code}", http_status=r.http_status)
            return Outcome(status="ok", start=start, end=end, first_token=first, usage=dict(r.usage),
                           stop_reason="end_turn", text="fake reply", http_status=200)
        finally:
            self.in_flight[arm] -= 1


def flat_pricer(usd_per_input: float = 1e-6, usd_per_output: float = 5e-6) -> Callable[..., Mapping[str, float]]:
    """A pricer with Haiku-like list prices ($1 / $5 per 1M tokens); cache writes 1.25x
    (5m) or 2x (1h) input, reads 0.1x. USD by bucket, as loadgen.catalog.pricing's."""

    def price(model_id: str, usage: Mapping[str, Any], ttl: str) -> Mapping[str, float]:
        b = {
            "input": int(usage.get("inputTokens") or 0) * usd_per_input,
            "output": int(usage.get("outputTokens") or 0) * usd_per_output,
            "cache_read": int(usage.get("cacheReadInputTokens") or 0) * usd_per_input * 0.1,
            "cache_write": int(usage.get("cacheWriteInputTokens") or 0) * usd_per_input
            * (2.0 if ttl == "1h" else 1.25),
        }
        b["total"] = sum(b.values())
        return b

    return price


@dataclass
class VirtualRun:
    runner: Runner
    transport: HandlerTransport
    clock: VirtualClock
    attempts: list = field(default_factory=list)
    costs: list = field(default_factory=list)   # the pricer's buckets per attempt, same order

    @property
    def calls(self) -> list[Call]:
        return self.transport.calls


def run_virtual(scenario: str | Scenario, handler: Callable[[Call], Reply], *, limits: Limits = Limits(),
                pricer: Callable[..., Mapping[str, float]] | None = None) -> VirtualRun:
    """Run a scenario (TOML text or a Scenario) through the real Runner on a fresh
    VirtualClock, the fake Bedrock answering every attempt."""
    sc = loads(scenario, "<test>") if isinstance(scenario, str) else scenario
    clock = VirtualClock()
    transport = HandlerTransport(handler, clock)
    run = VirtualRun(runner=None, transport=transport, clock=clock)  # type: ignore[arg-type]

    def sink(a: Any, costs: Mapping[str, float]) -> None:
        run.attempts.append(a)
        run.costs.append(costs)

    run.runner = Runner(sc, transport, clock, sink=sink, pricer=pricer or flat_pricer(), limits=limits,
                        wall_clock=lambda: 0.0)
    anyio.run(run.runner.run, backend_options={"loop_factory": clock.loop_factory})
    return run
