"""Open-loop requests prepared ahead of their intended start (engine/release.py
PREPARE_AHEAD_S): botocore builds and signs them early, they wait in the client's
before-send event and reach HTTP at their intended start, never before, and each
attempt's start is stamped there. Real client, emulator on loopback, real clock."""

from __future__ import annotations

import contextlib
import random
import re
import time

import anyio
import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve
from loadgen.engine import schedule
from loadgen.engine import release as release_module
from loadgen.engine.clock import RealClock, WarpClock
from loadgen.engine.runner import Limits, Runner
from loadgen.engine.transport import BedrockTransport, TargetError
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


@contextlib.asynccontextmanager
async def emulator_client(clock, *, max_connections: int = 8):
    """A BedrockTransport on `clock` against a fresh emulator ("fast") on loopback."""
    model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
    async with serve(model, clock) as url:
        async with BedrockTransport.open(clock, region="us-east-1", endpoint_url=url,
                                         max_connections=max_connections, dummy_credentials=True) as t:
            yield t


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
        async with emulator_client(clock, max_connections=8) as t:
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


def _call(*, release_in: float, timeout: float, sign_fails: bool = False, sign_s: float = 0.0,
          fail_with: type[Exception] = RuntimeError, clock=None):
    """(release time, outcome, times on_release was told) of one call; `sign_fails`: the
    signing step raises `fail_with` after blocking `sign_s` seconds."""
    released: list[float] = []

    async def go():
        c = clock or RealClock()
        async with emulator_client(c, max_connections=2) as t:
            if sign_fails:
                def fail(**_):
                    time.sleep(sign_s)
                    raise fail_with("signing failed")
                t.client.meta.events.register("before-sign.bedrock-runtime", fail)
            at = c.now() + release_in
            out = await t.call(GOOD, stream=False, timeout=timeout, release_at=at, on_release=released.append)
            return at, out, released
    return anyio.run(go)


def test_the_timeout_counts_from_the_intended_start_not_from_preparation():
    at, out, released = _call(release_in=0.3, timeout=0.25)  # held 0.3 s: longer than the timeout
    assert out.status == "ok", out.message
    assert out.start >= at and out.end >= out.start
    assert released == [out.start]  # the runner's cache model is told once, at the release


def test_a_call_failing_before_the_wire_fails_at_its_intended_start():
    at, out, released = _call(release_in=0.2, timeout=5.0, sign_fails=True)
    assert (out.status, out.error_code) == ("error", "RuntimeError")
    assert out.start >= at and out.end >= out.start  # no attempt that ended before it was due
    assert released == [out.start]


def test_a_call_failing_before_the_wire_after_its_time_starts_no_earlier_than_it():
    # building took longer than the lead: it failed after its intended start
    at, out, released = _call(release_in=0.05, timeout=5.0, sign_fails=True, sign_s=0.2)
    assert out.error_code == "RuntimeError"
    assert at <= out.start <= out.end and released == [out.start]


def test_lost_credentials_while_prepared_fail_the_target_at_the_intended_start():
    from botocore.exceptions import NoCredentialsError

    clock = RealClock()
    seen: list[tuple[float, float]] = []   # (release time, when TargetError came)

    async def go():
        async with emulator_client(clock, max_connections=2) as t:
            def fail(**_):
                raise NoCredentialsError()
            t.client.meta.events.register("before-sign.bedrock-runtime", fail)
            at = clock.now() + 0.3
            try:
                await t.call(GOOD, stream=False, timeout=5.0, release_at=at)
            except TargetError:
                seen.append((at, clock.now()))
    anyio.run(go)
    (at, raised), = seen
    assert raised >= at  # raised once its time had come, not while it was held


def test_a_call_not_prepared_keeps_the_start_it_was_made_at_on_a_warp_clock():
    """Unprepared calls pass the hook untouched: on a warp clock botocore's building (here
    a slow signer, 20 ms real = 1 scenario second at x50) must not move the start."""
    clock = WarpClock(50.0)
    starts: list[float] = []

    async def go():
        async with emulator_client(clock, max_connections=2) as t:
            t.client.meta.events.register("before-sign.bedrock-runtime", lambda **_: time.sleep(0.02))
            with clock.driver():
                starts.append(clock.now())
                return await t.call(GOOD, stream=False, timeout=30.0)
    out = anyio.run(go)
    assert out.status == "ok", out.message
    assert out.start == pytest.approx(starts[0], abs=0.2)  # not ~1 s later, where the request went out


def test_only_clocks_that_never_jump_prepare_ahead():
    async def lead(clock) -> float:
        async with BedrockTransport.open(clock, region="us-east-1", endpoint_url="http://127.0.0.1:9",
                                         max_connections=2, dummy_credentials=True) as t:
            return t.prepare_ahead
    assert anyio.run(lead, RealClock()) == release_module.PREPARE_AHEAD_S > 0
    assert anyio.run(lead, WarpClock(10.0)) == 0.0  # a warp clock would jump over the hold as idle time


def test_an_abort_while_requests_are_held_records_none_of_them(monkeypatch):
    """Ctrl-C past the grace period while prepared requests wait for their time: those
    never reached HTTP and would not exist unprepared, so they are not attempts (and not
    counted as dispatched); every attempt recorded starts at or after its intended start
    and ends after it starts."""
    monkeypatch.setattr(release_module, "PREPARE_AHEAD_S", 0.5)
    sc = loads(SCENARIO.replace('duration = "1s"', 'duration = "3s"'), "<test>")
    attempts: list = []
    aborted_at: list[float] = []

    async def go() -> Runner:
        clock = RealClock()
        async with emulator_client(clock, max_connections=8) as t:
            runner = Runner(sc, t, clock, sink=lambda a, costs: attempts.append(a),
                            pricer=lambda m, u, ttl, tier=None: {"total": 0.0}, limits=Limits())

            async def abort_later() -> None:
                await clock.sleep_until(1.0)
                aborted_at.append(clock.now())
                runner.abort()

            async with anyio.create_task_group() as tg:
                tg.start_soon(abort_later)
                await runner.run()
            return runner

    runner = anyio.run(go)
    held = [t for _, t, _ in schedule.open_loop(sc) if aborted_at[0] < t < aborted_at[0] + 0.45]
    assert held, "no request was prepared ahead when the run was aborted"
    assert all(a.intended <= aborted_at[0] + 0.01 for a in attempts)   # none of the held ones
    assert runner.dispatched == len(attempts) > 5
    for a in attempts:
        assert a.intended <= a.start <= a.end, (a.intended, a.start, a.end, a.error_code)


def test_the_cache_model_predicts_a_prepared_request_when_it_is_released(monkeypatch):
    """Two requests on one cached prefix, 0.3 s apart, the second prepared 0.5 s ahead (so
    while the first is still on the wire). The first one's response begins in between:
    predicted at its release, the second is warm (predicted when prepared it would have
    been cold, a write still in flight)."""
    monkeypatch.setattr(release_module, "PREPARE_AHEAD_S", 0.5)
    text = SCENARIO.replace('duration = "1s"', 'duration = "0.6s"').replace("prefix_tokens = 64",
                                                                          "prefix_tokens = 5024")
    text = text.replace('kind = "poisson"\nrate = "25/s"', 'kind = "constant"\nrate = "200/min"')
    sc = loads(text, "<test>")
    assert [t for _, t, _ in schedule.open_loop(sc)] == pytest.approx([0.0, 0.3])
    attempts: list = []

    async def go() -> None:
        clock = RealClock()
        async with emulator_client(clock) as t:
            await Runner(sc, t, clock, sink=lambda a, costs: attempts.append(a),
                         pricer=lambda m, u, ttl, tier=None: {"total": 0.0}, limits=Limits()).run()
    anyio.run(go)
    first, second = sorted(attempts, key=lambda a: a.intended)
    assert first.cache_write > 0 and second.cache_read > 0      # the emulator: written, then read
    assert second.cache_predicted == "warm", (second.cache_predicted, second.cache_race)
