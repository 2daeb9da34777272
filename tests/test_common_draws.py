"""Common random numbers: the emulator draws an attempt's latency and faults from the
attempt's name (`session:turn:attempt`), so the same attempt draws the same in every arm,
whatever the arrival order, in simulate and over HTTP; without a name it draws from the
shared stream as before."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import anyio
import pytest

from loadgen.commands.cli import main
from loadgen.emulator import draws
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.draws import KeyedDraws, keyed_hash
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import DRAW_KEY_HEADER as SERVER_HEADER
from loadgen.emulator.server import serve
from loadgen.engine.clock import RealClock, VirtualClock
from loadgen.engine.transport import DRAW_KEY_HEADER, BedrockTransport
from result_files import only_dir, read_results

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def body(text: str = "Hi") -> dict:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 50}}


def model(**cfg) -> EmulatorModel:
    return EmulatorModel(EmulatorConfig.from_mapping(cfg), clock=VirtualClock(), rng=random.Random(1),
                         draw_seed="7:emulator")


def test_keyed_draws_have_the_shared_streams_distributions():
    seed = keyed_hash("1")
    us = [KeyedDraws(seed, f"{i}:0:1").u(draws.FAULT) for i in range(20000)]
    zs = [KeyedDraws(seed, f"{i}:0:1").normal(draws.TTFT) for i in range(20000)]
    assert min(us) >= 0.0 and max(us) < 1.0
    assert statistics.fmean(us) == pytest.approx(0.5, abs=0.01)
    assert statistics.fmean(zs) == pytest.approx(0.0, abs=0.03)
    assert statistics.pstdev(zs) == pytest.approx(1.0, abs=0.03)
    assert sum(abs(z) > 1.96 for z in zs) / len(zs) == pytest.approx(0.05, abs=0.006)
    rolls = [KeyedDraws(seed, f"{i}").randint(draws.MID_STREAM_AT, 1, 6) for i in range(6000)]
    assert set(rolls) == {1, 2, 3, 4, 5, 6} and max(rolls.count(k) for k in range(1, 7)) < 1150
    # the key decides, and so does the seed
    assert KeyedDraws(seed, "3:0:1").normal(draws.TTFT) == KeyedDraws(seed, "3:0:1").normal(draws.TTFT)
    assert KeyedDraws(seed, "3:0:1").normal(draws.TTFT) != KeyedDraws(keyed_hash("2"), "3:0:1").normal(draws.TTFT)


def test_the_same_attempt_draws_the_same_whatever_arrives_first():
    """Two arms' copies of attempts 1 and 2, in either order, with an injected-fault rate and
    spread latency: each attempt's plan is the same; the shared stream pairs them by order."""
    faults = {"latency": "realistic", "faults": {"error_rates": {"InternalServerException": 0.3},
                                                 "mid_stream_rate": 0.3, "slow_stream_rate": 0.2}}

    def plans(order: list[str], keyed: bool) -> dict[str, tuple]:
        m = model(**faults)
        out = {}
        for i, key in enumerate(order):
            r = m.begin(MODEL, body(f"question {key.split(':')[0]}"), stream=True,
                        draw_key=key if keyed else None)
            out[f"{key}#{order[:i].count(key)}"] = (
                ("error", r.code) if not hasattr(r, "ttft_s") else (r.ttft_s, r.tokens_per_s, r.fault))
        return out

    keys = [f"{i}:0:1" for i in range(40)]
    ab = [k for k in keys for _ in range(2)]             # arm a then arm b at each arrival
    ba = list(reversed(ab))                             # the other way round
    assert plans(ab, keyed=True) == plans(ba, keyed=True)
    assert plans(ab, keyed=False) != plans(ba, keyed=False)
    # a retry is another attempt: it draws anew
    m = model(**faults)
    first = [m.begin(MODEL, body(), stream=True, draw_key=f"{i}:0:1") for i in range(30)]
    retry = [m.begin(MODEL, body(), stream=True, draw_key=f"{i}:0:2") for i in range(30)]
    assert [getattr(p, "ttft_s", None) for p in first] != [getattr(p, "ttft_s", None) for p in retry]


def test_a_model_without_a_draw_seed_keys_its_draws_by_its_rngs_seed():
    def ttft(seed: int) -> float:
        m = EmulatorModel(EmulatorConfig.from_mapping({"latency": "realistic"}), clock=VirtualClock(),
                          rng=random.Random(seed))
        return m.begin(MODEL, body(), stream=True, draw_key="1:0:1").ttft_s

    assert ttft(1) == ttft(1) != ttft(2)


def test_without_a_key_the_shared_stream_is_used_as_before():
    """No key (a plain SDK client): the draws are the shared stream's, in call order."""
    m = model(latency="realistic")
    rng = random.Random(1)
    rng.getrandbits(64)  # the request-id stream's seed, taken first
    lat = m.config.latency
    for _ in range(5):
        p = m.begin(MODEL, body("Reply with about 20 tokens."), stream=True)
        ttft = lat.ttft_s * math.exp(lat.ttft_sigma * rng.gauss(0.0, 1.0))
        assert p.ttft_s == pytest.approx(ttft + p.usage.input_tokens / 1000 * lat.prefill_s_per_1k, rel=1e-12)
        rng.gauss(0.0, 1.0)  # the output speed's draw


SCENARIO = """
name = "twins"
seed = 3
duration = "3m"

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 200
stream = true

[workload]
kind = "single"
prefix_tokens = 3000
question_tokens = 40
output_tokens = { dist = "lognormal", median = 80, p90 = 160 }

[arrivals]
kind = "poisson"
rate = "1/s"

[emulator]
latency = "realistic"

[[arms]]
name = "a"
profile = "geo"

[[arms]]
name = "b"
profile = "geo"
"""


def per_request(d: Path) -> dict[str, dict[tuple, tuple]]:
    _, lines = read_results(d)
    out: dict[str, dict[tuple, tuple]] = {}
    for r in lines:
        out.setdefault(r["arm"], {})[(r["session"], r["attempt"])] = (
            round(r["first_token"] - r["start"], 9), round(r["end"] - r["start"], 9), r["cache_state"])
    return out


def test_two_identical_arms_get_identical_latency_in_simulate(tmp_path):
    """The user-level promise: arms that do the same get the same figures, request for
    request (before: one stream in arrival order, the same turn up to seconds apart)."""
    sc = tmp_path / "twins.toml"
    sc.write_text(SCENARIO)
    assert main(["simulate", str(sc), "--out", str(tmp_path / "res"), "--quiet"]) == 0
    got = per_request(only_dir(tmp_path / "res"))
    assert len(got["a"]) > 150 and got["a"] == got["b"]


def test_the_key_travels_over_http_to_the_emulator_and_never_to_aws(monkeypatch):
    """BedrockTransport sends the attempt's name to loadgen's emulator (dummy credentials),
    whose model draws from it: the same key, the same modelled timing; the AWS path (the
    user's credentials) sends no header."""
    assert DRAW_KEY_HEADER == SERVER_HEADER
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")   # "the user's", for the AWS path
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    seen: list[str | None] = []

    async def go() -> list:
        clock = RealClock()
        spread = {"preset": "fast", "ttft_s": 0.02, "ttft_sigma": 0.5}   # fast, but each draw tells
        m = EmulatorModel(EmulatorConfig.from_mapping({"latency": spread}), clock=clock, rng=random.Random(1),
                          draw_seed="x")
        begin = m.begin

        def spy(*a, draw_key=None, **kw):
            seen.append(draw_key)
            return begin(*a, draw_key=draw_key, **kw)

        m.begin = spy  # type: ignore[method-assign]
        outs = []
        async with serve(m, clock) as url:
            for dummy in (True, False):
                async with BedrockTransport.open(clock, region="us-east-1", endpoint_url=url, max_connections=2,
                                                 dummy_credentials=dummy) as t:
                    for key in ("5:0:1", "5:0:1", "6:0:1"):
                        params = {"modelId": MODEL, **body()}
                        outs.append((await t.call(params, stream=True, timeout=30, draw_key=key)).modelled_first_token)
        return outs

    outs = anyio.run(go)
    assert seen == ["5:0:1", "5:0:1", "6:0:1", None, None, None]
    assert outs[0] == outs[1] != outs[2]
