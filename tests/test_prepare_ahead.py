"""Open-loop requests prepared ahead of their intended start (engine/release.py
PREPARE_AHEAD_S): botocore builds and signs them early, they wait in the client's
before-send event and reach HTTP at their intended start, never before, and each
attempt's start is stamped there. Real client, emulator on loopback, real clock."""

from __future__ import annotations

import random
import re

import anyio
import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve
from loadgen.engine import schedule
from loadgen.engine import release as release_module
from loadgen.engine.clock import RealClock, WarpClock
from loadgen.engine.runner import Limits, Runner
from loadgen.engine.transport import BedrockTransport
from loadgen.scenario import loads

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GOOD = {"modelId": MODEL, "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": 20}}
QUESTION = re.compile(rb'"text": ?"Q(\d+): ')  # workload.single's question starts "Q<index>: "

SCENARIO = f"""
name = "ahead"
seed = 5
duration = "1s"

[model]
id = "{MODEL}"
max_tokens = 20

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = 12
output_tokens = 8

[arrivals]
kind = "poisson"
rate = "25/s"

[[arms]]
name = "a"
"""


def _index(request) -> int | None:
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    m = QUESTION.search(body)
    return int(m.group(1)) if m else None


def test_requests_are_built_before_their_start_and_sent_at_it(monkeypatch):
    # a generous lead, so a loaded test machine still prepares (almost) every request early
    monkeypatch.setattr(release_module, "PREPARE_AHEAD_S", 0.2)
    sc = loads(SCENARIO, "<test>")
    intended = {i: t for i, t, _ in schedule.open_loop(sc)}
    signed: dict[int, float] = {}
    sent: dict[int, float] = {}
    attempts: list = []

    async def go() -> None:
        clock = RealClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
        async with serve(model, clock) as url:
            async with BedrockTransport.open(clock, region="us-east-1", endpoint_url=url, max_connections=8,
                                             dummy_credentials=True) as t:
                assert t.prepare_ahead == pytest.approx(0.2)
                def stamp(times: dict[int, float]):
                    def hook(request, **_) -> None:  # None: a before-send answer would replace the response
                        times.setdefault(_index(request), clock.now())
                    return hook
                t.client.meta.events.register("before-sign.bedrock-runtime", stamp(signed))
                t.client.meta.events.register("before-send.bedrock-runtime", stamp(sent))
                runner = Runner(sc, t, clock, sink=lambda a, costs: attempts.append(a),
                                pricer=lambda m, u, ttl, tier=None: {"total": 0.0}, limits=Limits())
                await runner.run()

    anyio.run(go)
    assert len(attempts) == len(intended) > 10
    assert all(a.status == "ok" for a in attempts), [(a.status, a.message) for a in attempts]
    early = sum(signed[i] < intended[i] for i in intended)
    assert early >= 0.9 * len(intended), f"only {early} of {len(intended)} requests were built ahead"
    for a in attempts:
        i = a.session
        assert sent[i] >= intended[i], f"request {i} reached HTTP {intended[i] - sent[i]:.4f} s early"
        # the attempt's start is where it reached HTTP (the release hook runs first), not when it was built
        assert a.start >= intended[i] and 0 <= sent[i] - a.start < 0.05
        assert a.start - a.intended == pytest.approx(a.start - intended[i])


def _call(*, release_in: float, timeout: float, sign_fails: bool = False):
    async def go():
        clock = RealClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
        async with serve(model, clock) as url:
            async with BedrockTransport.open(clock, region="us-east-1", endpoint_url=url, max_connections=2,
                                             dummy_credentials=True) as t:
                if sign_fails:
                    def fail(**_):
                        raise RuntimeError("signing failed")
                    t.client.meta.events.register("before-sign.bedrock-runtime", fail)
                at = clock.now() + release_in
                out = await t.call(GOOD, stream=False, timeout=timeout, release_at=at)
                return at, out
    return anyio.run(go)


def test_the_timeout_counts_from_the_release_not_from_preparation():
    at, out = _call(release_in=0.3, timeout=0.25)  # held 0.3 s: longer than the timeout
    assert out.status == "ok", out.message
    assert out.start >= at and out.end >= out.start


def test_a_call_failing_before_the_wire_fails_at_its_intended_start():
    at, out = _call(release_in=0.2, timeout=5.0, sign_fails=True)
    assert (out.status, out.error_code) == ("error", "RuntimeError")
    assert out.start >= at and out.end >= out.start  # no attempt that ended before it was due


def test_only_clocks_that_never_jump_prepare_ahead():
    async def lead(clock) -> float:
        async with BedrockTransport.open(clock, region="us-east-1", endpoint_url="http://127.0.0.1:9",
                                         max_connections=2, dummy_credentials=True) as t:
            return t.prepare_ahead
    assert anyio.run(lead, RealClock()) == release_module.PREPARE_AHEAD_S > 0
    assert anyio.run(lead, WarpClock(10.0)) == 0.0  # a warp clock would jump over the hold as idle time
