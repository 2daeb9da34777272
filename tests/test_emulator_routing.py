"""Cross-Region routing under load: a profile spills to other Regions before its source
Region starts queueing, so more destination Regions hold more load at the same latency."""

from __future__ import annotations

import random

import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.model import EmulatorModel

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
CAP = 60_000          # tokens per minute one Region serves (small, so few requests fill it)
BASE_TTFT = 0.6


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


def drive(model_id: str, offered_tpm: float, *, seconds: float = 240.0) -> tuple[float, float, set]:
    """Offer `offered_tpm` tokens a minute of ~1,025-token requests for `seconds`; return
    (worst extra ttft from queueing in the last 2 minutes (s), fraction throttled there,
    Regions that served). Latency has no jitter, so ttft - base = queueing + cross-Region."""
    cfg = EmulatorConfig.from_mapping({
        "latency": {"preset": "realistic", "ttft_sigma": 0, "prefill_s_per_1k": 0, "cache_read_s_per_1k": 0,
                    "tokens_per_s": 0},
        "quotas": {"tpm": 0},                       # the account quota is not what this measures
        "routing": {"region_capacity_tpm": CAP},
    })
    clock = FakeClock()
    m = EmulatorModel(cfg, clock=clock, rng=random.Random(3))
    body = {"messages": [{"role": "user", "content": [{"text": "q" * 4000 + " Reply with about 5 tokens"}]}],
            "inferenceConfig": {"maxTokens": 10}}
    per_request = 1000 + 7 + 5 * 5             # input + output x burndown 5, as finish() charges it
    gap = 60.0 / (offered_tpm / per_request)
    worst, throttled, n, served = 0.0, 0, 0, set()
    for i in range(int(seconds / gap)):
        clock.t = i * gap
        r = m.begin(model_id, body, stream=False)
        steady = clock.t >= seconds - 120
        n += steady
        if isinstance(r, BedrockError):
            assert r.code == "ThrottlingException", r
            throttled += steady
            continue
        m.finish(r)
        served.add(r.served_region)
        cross = cfg.latency.cross_region_s if r.served_region != "us-east-1" else 0.0
        if steady:
            worst = max(worst, r.ttft_s - BASE_TTFT - cross)
    return worst, throttled / n, served


def test_shipped_routing_spills_before_the_queueing_knee():
    c = EmulatorConfig.defaults()
    assert c.spill_at < c.latency.queue_knee


def test_geo_profile_holds_a_load_that_queues_one_region_without_queueing():
    # 1.05 x one Region's capacity: the bare id throttles; before the fix the us. profile
    # kept its source Region up to 80 % (10 points past the 70 % knee), adding ~0.2 s
    load = 1.05 * CAP
    worst, thr, _ = drive(HAIKU, load)
    assert thr > 0.01
    worst, thr, served = drive("us." + HAIKU, load)
    assert thr == 0 and worst == pytest.approx(0.0, abs=1e-9)
    assert "us-east-1" in served and len(served) >= 2


def test_more_destination_regions_hold_more_load_at_the_same_latency():
    # 2.4 x one Region: the three us. Regions run at 80 % (past the knee, queueing);
    # the global profile's many Regions stay below it
    load = 2.4 * CAP
    geo_worst, geo_thr, _ = drive("us." + HAIKU, load)
    glob_worst, glob_thr, served = drive("global." + HAIKU, load)
    assert geo_thr == glob_thr == 0
    assert geo_worst > 0.1 and glob_worst == pytest.approx(0.0, abs=1e-9)
    assert len(served) > 3
    # at 4 x one Region the us. profile runs out of capacity; global does not
    assert drive("us." + HAIKU, 4 * CAP)[1] > 0.01
    assert drive("global." + HAIKU, 4 * CAP)[1] == 0


def test_when_every_region_is_past_spill_at_the_least_queued_one_serves():
    # past spill_at everywhere the model balances by expected queueing, so no Region runs
    # far hotter than the others (the source does not soak up load just for being first)
    cfg = EmulatorConfig.from_mapping({"latency": "realistic", "quotas": {"tpm": 0},
                                       "routing": {"region_capacity_tpm": CAP}})
    clock = FakeClock()
    m = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
    body = {"messages": [{"role": "user", "content": [{"text": "q" * 4000}]}], "inferenceConfig": {"maxTokens": 10}}
    for _ in range(150):   # 150 x 1,010 reserved = 0.84 of the three Regions' capacity, all at t = 0
        r = m.begin("us." + HAIKU, body, stream=False)
        assert not isinstance(r, BedrockError)
    loads = [m.regions.load[(HAIKU, reg)].total(0.0) / CAP for reg in ("us-east-1", "us-east-2", "us-west-2")]
    assert max(loads) - min(loads) < 0.05, loads
