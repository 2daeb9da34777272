"""Metrics: what a user reads in summary.json must match what was recorded."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.api.session import ProbeState
from loadgen.api.setup import make_pricer
from loadgen.api.virtual import run_virtual
from loadgen.catalog.pricing import Breakdown
from loadgen.emulator.config import EmulatorConfig
from loadgen.engine.clock import VirtualClock
from loadgen.engine.record import FIELDS, STATUSES, Attempt, attempt_from
from loadgen.results.gap_buckets import GAP_EDGES_S, gap_bucket_index, gap_bucket_labels
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import load

ARM = ArmInfo("ttl-5m", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m")
ARM_1H = ArmInfo("ttl-1h", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "1h")
RUN_FACTS = {"loadgen_version": "0.1.0", "scenario": "slow-agent", "target": "emulator", "clock": "warp",
             "seed": 7, "wall_s": 41.2, "scenario_s": 7200.0}


def att(**kw) -> Attempt:
    """An ok attempt sent on time at t=0 taking 1 s, overridable field by field."""
    d = dict(arm="ttl-5m", session=0, turn=0, attempt=1, intended=0.0, start=0.0, first_token=0.5, end=1.0,
             status="ok", error_code=None, model_id=ARM.model_id, profile="geo", region="us-east-1")
    d.update(kw)
    if d["status"] != "ok" and "first_token" not in kw:
        d["first_token"] = None
    return Attempt(**d)


def one(arm: ArmInfo = ARM) -> Metrics:
    return Metrics([arm])


def arm_summary(m: Metrics, name: str = "ttl-5m") -> dict:
    return m.summary(RUN_FACTS)["arms"][name]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(1, 3)), max_size=60))
def test_sent_is_the_sum_of_outcomes(outcomes):
    m = one()
    for i, (status, attempt) in enumerate(outcomes):
        code = {"ok": None, "throttled": "ThrottlingException", "error": "InternalServerException",
                "timeout": None}[status]
        m.record(att(session=i, attempt=attempt, status=status, error_code=code, start=i, intended=i, end=i + 1))
    r = arm_summary(m)["requests"]
    assert r["sent"] == len(outcomes)
    assert r["sent"] == r["ok"] + r["throttled"] + r["error"] + r["timeout"]
    assert r["retries"] == sum(1 for _, a in outcomes if a > 1)
    snap = m.snapshot()
    assert snap.total.sent == len(outcomes) == snap.arm("ttl-5m").sent


def test_percentiles_of_1_to_1000_ms_within_hdr_precision():
    m = one()
    for i in range(1, 1001):
        m.record(att(session=i, end=i / 1000.0, first_token=i / 1000.0))
    e2e = arm_summary(m)["latency_ms"]["e2e"]
    assert e2e["count"] == 1000
    # 3 significant digits: each value is within 0.1 % of the true one
    for key, want in (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999), ("max", 1000), ("mean", 500.5)):
        assert e2e[key] == pytest.approx(want, rel=1e-3), key


def test_latency_is_measured_from_intended_start_not_send():
    m = one()
    # the schedule wanted t=10; the generator was 2 s late; first token 0.5 s after send
    m.record(att(intended=10.0, start=12.0, first_token=12.5, end=13.0))
    lat = arm_summary(m)["latency_ms"]
    assert lat["ttft"]["p50"] == pytest.approx(2500, rel=1e-3)
    assert lat["e2e"]["p50"] == pytest.approx(3000, rel=1e-3)
    assert lat["service"]["p50"] == pytest.approx(1000, rel=1e-3)
    assert lat["schedule_lag"]["p50"] == pytest.approx(2000, rel=1e-3)


def test_failed_attempts_stay_out_of_latency_but_count_in_schedule_lag():
    m = one()
    m.record(att(end=2.0))
    m.record(att(status="throttled", error_code="ThrottlingException", end=0.04))
    m.record(att(status="timeout", end=60.0))
    s = arm_summary(m)
    assert s["latency_ms"]["e2e"]["count"] == 1
    assert s["latency_ms"]["e2e"]["p50"] == pytest.approx(2000, rel=1e-3)
    assert s["latency_ms"]["schedule_lag"]["count"] == 3
    assert s["errors"] == {"ThrottlingException": 1, "timeout": 1}


def test_empty_latency_is_null_not_zero():
    m = one()
    m.record(att(status="throttled", error_code="ThrottlingException"))
    ttft = arm_summary(m)["latency_ms"]["ttft"]
    assert ttft["count"] == 0 and ttft["p99"] is None


def test_warm_ratio_and_mismatches():
    m = one()
    for obs, pred in [("cold", "cold"), ("warm", "warm"), ("warm", "cold"), ("warm", "warm"), ("none", "warm"),
                      ("cold", "warm")]:
        m.record(att(cache_state=obs, cache_predicted=pred))
    m.record(att(status="throttled", error_code="ThrottlingException", cache_state="none", cache_predicted="warm"))
    c = arm_summary(m)["cache"]
    assert (c["cold"], c["warm"], c["none"]) == (2, 3, 1)  # ok attempts only
    assert c["warm_ratio"] == pytest.approx(0.6)
    assert c["mismatch"]["total"] == 3
    assert c["mismatch"]["by_pair"] == {"cold->warm": 1, "warm->cold": 1, "warm->none": 1}
    assert set(c["mismatch"]["likely_cause"]) == {"cold->warm", "warm->cold", "warm->none"}
    assert "below the model's minimum" in c["mismatch"]["likely_cause"]["warm->none"]
    assert m.snapshot().total.warm_ratio == pytest.approx(0.6)


def test_warm_ratio_is_zero_without_cache_traffic():
    m = one()
    m.record(att())
    assert arm_summary(m)["cache"]["warm_ratio"] == 0.0


def test_tokens_and_cost_buckets_per_1000_successful_requests():
    m = one()
    split = {"input": 0.25, "output": 0.5, "cache_read": 0.125, "cache_write": 0.125}
    m.record(att(input_tokens=10, output_tokens=20, cache_read=5000, cache_write=0, cost_usd=1.0), split)
    m.record(att(input_tokens=10, output_tokens=30, cache_write=5000, cache_write_1h=5000, cost_usd=1.0), split)
    m.record(att(status="throttled", error_code="ThrottlingException"))  # bills nothing
    s = arm_summary(m)
    assert s["tokens"] == {"input": 20, "output": 50, "cache_read": 5000, "cache_write": 5000,
                           "cache_write_5m": 0, "cache_write_1h": 5000}
    assert s["cost_usd"] == {"total": 2.0, "per_1000": 1000.0, "input": 0.5, "output": 1.0,
                             "cache_read": 0.25, "cache_write": 0.25}


def test_gap_buckets_edges_labels_and_counts():
    edges = GAP_EDGES_S
    assert edges[0] == 0 and list(edges) == sorted(edges)
    labels = gap_bucket_labels()
    assert labels[0] == "0-1m" and labels[3] == "4-5m" and labels[4] == "5-6m" and labels[-1] == "60m+"
    assert gap_bucket_index(299.9) == 3 and gap_bucket_index(300.0) == 4 and gap_bucket_index(10 ** 6) == 8
    assert gap_bucket_index(-0.001) == 0

    m = one()
    m.record(att(gap_s=250.0, cache_state="warm"))
    m.record(att(gap_s=290.0, cache_state="warm"))
    m.record(att(gap_s=299.0, cache_state="cold"))
    m.record(att(gap_s=310.0, cache_state="cold"))
    m.record(att(gap_s=None, cache_state="cold"))  # first use of a key: no gap
    gb = {g["label"]: g for g in arm_summary(m)["gap_buckets"]}
    assert (gb["4-5m"]["warm"], gb["4-5m"]["cold"]) == (2, 1)
    assert gb["4-5m"]["warm_ratio"] == pytest.approx(2 / 3, abs=1e-4)
    assert (gb["5-6m"]["warm"], gb["5-6m"]["cold"]) == (0, 1)
    assert sum(g["warm"] + g["cold"] for g in gb.values()) == 4


def test_rpm_and_tpm_peaks_use_a_rolling_60s_window():
    m = one()
    for i in range(100):
        m.record(att(session=i, intended=0.5, start=0.5, end=0.9, input_tokens=10, output_tokens=5))
    for i in range(100):  # 59 s later: the same 60 s window
        m.record(att(session=i, intended=59.5, start=59.5, end=59.9, input_tokens=10, cache_read=999))
    for i in range(50):  # at 119 s: shares a window only with the second burst
        m.record(att(session=i, intended=119.0, start=119.0, end=119.5))
    s = m.summary(RUN_FACTS)
    assert s["arms"]["ttl-5m"]["rpm_peak"] == 200
    assert s["arms"]["ttl-5m"]["tpm_peak"] == 100 * 15 + 100 * 10  # cache reads are not quota tokens
    assert s["rpm_peak"] == 200


def test_recent_rates_for_the_live_display():
    m = Metrics([ARM, ARM_1H])
    for i in range(30):
        m.record(att(start=100.0 + i, intended=100.0 + i, end=100.5 + i, input_tokens=100))
        m.record(att(arm="ttl-1h", start=100.0 + i, intended=100.0 + i, end=100.5 + i, input_tokens=100))
    r = m.recent(now=129.9, window=60)
    assert r.rpm == 60 and r.tpm == 6000 and r.ok_pm == 60
    assert m.recent(now=129.9, window=60, arm="ttl-1h").rpm == 30
    assert m.recent(now=500.0).rpm == 0


def test_snapshot_per_arm_and_total():
    m = Metrics([ARM, ARM_1H])
    m.record(att(cost_usd=0.5, cache_state="warm"))
    m.record(att(arm="ttl-1h", status="throttled", error_code="ThrottlingException"))
    snap = m.snapshot()
    assert snap.arm("ttl-5m").ok == 1 and snap.arm("ttl-1h").throttled == 1
    assert (snap.total.sent, snap.total.ok, snap.total.cost_usd) == (2, 1, 0.5)


def random_attempts(n: int, seed: int) -> list[tuple[Attempt, dict]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        status = rng.choice(["ok"] * 6 + ["throttled", "error", "timeout"])
        t = rng.uniform(0, 600)
        lag = rng.expovariate(50)
        cost = rng.randint(0, 2 ** 12) / 2 ** 20  # dyadic: float sums are exact in any order
        a = att(arm=rng.choice(["ttl-5m", "ttl-1h"]), session=i, attempt=rng.randint(1, 2), intended=t,
                start=t + lag, first_token=t + lag + rng.uniform(0.1, 2) if status == "ok" else None,
                end=t + lag + rng.uniform(0.2, 30), status=status,
                error_code={"throttled": "ThrottlingException", "error": "ModelErrorException"}.get(status),
                input_tokens=rng.randint(0, 500), output_tokens=rng.randint(0, 900),
                cache_read=rng.choice([0, 5000]), cache_state=rng.choice(["warm", "cold", "none"]),
                cache_predicted=rng.choice(["warm", "cold", "none"]), gap_s=rng.choice([None, rng.uniform(0, 5000)]),
                cost_usd=cost)
        out.append((a, {"input": cost / 2, "output": cost / 2}))
    return out


def test_merge_equals_recording_everything_in_one():
    data = random_attempts(2000, seed=3)
    whole = Metrics([ARM, ARM_1H])
    part1, part2 = Metrics([ARM, ARM_1H]), Metrics([ARM_1H])  # a worker may see only some arms
    for i, (a, split) in enumerate(data):
        whole.record(a, split)
        if a.arm == "ttl-5m" or i % 2:
            part1.record(a, split)
        else:
            part2.record(a, split)
    merged = part1.merge(part2)
    assert merged.summary(RUN_FACTS) == whole.summary(RUN_FACTS)
    assert merged.per_second() == whole.per_second()


def test_merge_refuses_different_arms_of_the_same_name():
    other = Metrics([ArmInfo("ttl-5m", "global.anthropic.claude-haiku-4-5-20251001-v1:0", "global", "5m")])
    with pytest.raises(ValueError, match="cannot merge arm 'ttl-5m'"):
        one().merge(other)


def test_summary_holds_every_key_of_the_design_contract():
    m = Metrics([ARM, ARM_1H])
    for a, split in random_attempts(200, seed=1):
        m.record(a, split)
    s = json.loads(json.dumps(m.summary(RUN_FACTS), allow_nan=False))  # plain JSON, no NaN
    for k, v in RUN_FACTS.items():
        assert s[k] == v
    assert set(s["arms"]) == {"ttl-5m", "ttl-1h"}
    arm = s["arms"]["ttl-5m"]
    assert arm["model_id"] == ARM.model_id and arm["cache_ttl"] == "5m"
    assert {"sent", "ok", "throttled", "error", "timeout", "retries"} <= set(arm["requests"])
    assert {"cold", "warm", "none", "warm_ratio", "mismatch"} <= set(arm["cache"])
    assert {"input", "output", "cache_read", "cache_write"} <= set(arm["tokens"])
    assert {"total", "per_1000", "input", "output", "cache_read", "cache_write"} <= set(arm["cost_usd"])
    assert set(arm["latency_ms"]) >= {"ttft", "e2e", "service", "schedule_lag"}
    for lat in arm["latency_ms"].values():
        assert {"p50", "p90", "p99", "p999", "max", "mean", "count"} <= set(lat)
    assert {"rpm_peak", "tpm_peak", "gap_buckets", "errors"} <= set(arm)
    assert {"rpm_peak", "tpm_peak"} <= set(s)


def test_out_of_range_latency_is_pinned_and_counted_not_lost():
    m = one()
    m.record(att(end=30 * 3600.0))  # a 30 h "request": beyond the 24 h histogram
    s = arm_summary(m)
    assert s["latency_ms"]["e2e"]["count"] == 1
    assert s["latency_clamped"] == 1


def test_clear_errors_for_unknown_arm_and_status():
    m = one()
    with pytest.raises(ValueError, match="unknown arm 'nope'; expected one of ttl-5m"):
        m.record(att(arm="nope"))
    with pytest.raises(ValueError, match="status 'weird'; expected one of ok, throttled"):
        m.record(att(status="weird"))
    with pytest.raises(ValueError, match="duplicate arm name"):
        Metrics([ARM, ARM])


def test_cost_split_accepts_the_pricing_breakdown():
    m = one()
    m.record(att(cost_usd=0.75), Breakdown(input=0.25, output=0.5))
    c = arm_summary(m)["cost_usd"]
    assert (c["total"], c["input"], c["output"], c["cache_write"]) == (0.75, 0.25, 0.5, 0.0)
    assert m.span_s() == 2.0  # the attempt ended at t=1.0: buckets 0 and 1


def test_retries_do_not_count_as_schedule_lag():
    m = one()
    m.record(att(status="throttled", error_code="ThrottlingException", intended=0.0, start=0.001, end=0.05))
    # the retry starts 3 s after the intended start: backoff, not generator lateness
    m.record(att(attempt=2, intended=0.0, start=3.0, end=4.0))
    lag = arm_summary(m)["latency_ms"]["schedule_lag"]
    assert lag["count"] == 1 and lag["max"] < 2.0  # ms
    assert arm_summary(m)["latency_ms"]["e2e"]["max"] == pytest.approx(4000, rel=1e-2)  # backoff is in e2e


# ---- every attempt is timed: failures never vanish from latency ----------------------------


def test_every_attempt_is_timed_failed_ones_at_the_time_they_failed():
    m = one()
    m.record(att(end=2.0))                                                       # ok, ttft 0.5 s
    m.record(att(status="throttled", error_code="ThrottlingException", end=0.04))  # fast failure
    m.record(att(status="timeout", end=60.0))                                    # at its deadline
    m.record(att(status="error", error_code="ModelStreamErrorException", first_token=0.3, end=5.0))  # mid-stream
    lat = arm_summary(m)["latency_ms"]
    # the ok-only keys keep their meaning, and say what they leave out
    assert (lat["e2e"]["count"], lat["e2e"]["failed"]) == (1, 3)
    assert (lat["ttft"]["count"], lat["ttft"]["failed"]) == (1, 3)
    # every attempt: the timeout at its 60 s deadline, the throttle at 40 ms
    assert (lat["e2e_all"]["count"], lat["e2e_all"]["failed"]) == (4, 3)
    assert lat["e2e_all"]["max"] == pytest.approx(60_000, rel=1e-3)
    assert lat["service_all"]["count"] == 4
    # ttft: a failure before any token counts its wait (the timeout: 60 s); the mid-stream
    # error had its first token at 0.3 s
    assert lat["ttft_all"]["count"] == 4 and lat["ttft_all"]["max"] == pytest.approx(60_000, rel=1e-3)
    assert lat["ttft_all"]["p50"] == pytest.approx(300, rel=1e-3)
    assert (lat["schedule_lag"]["count"], lat["schedule_lag"]["failed"]) == (4, 3)


def test_a_ttft_clamped_at_the_histogram_edge_is_counted():
    m = one()
    # a first token stamped before the intended start (clock trouble): pinned at 0 and counted
    m.record(att(intended=10.0, start=10.0, first_token=9.0, end=11.0))
    s = arm_summary(m)
    assert s["latency_ms"]["ttft"]["count"] == 1 and s["latency_ms"]["ttft"]["max"] == 0
    assert s["latency_clamped"] == 1


def test_merged_parts_keep_every_failure_in_the_all_attempt_figures():
    data = random_attempts(500, seed=11)
    a, b = Metrics([ARM, ARM_1H]), Metrics([ARM, ARM_1H])
    for i, (att_, split) in enumerate(data):
        (a if i % 3 else b).record(att_, split)
    s = a.merge(b).summary(RUN_FACTS)
    for arm in s["arms"].values():
        req, lat = arm["requests"], arm["latency_ms"]
        assert lat["e2e_all"]["count"] == lat["service_all"]["count"] == req["sent"]
        assert lat["e2e_all"]["failed"] == lat["e2e"]["failed"] == req["sent"] - req["ok"] > 0


def test_attempt_from_is_the_dataclass_constructor():
    kw = dict(arm="a", session=1, turn=0, attempt=2, intended=0.1, start=0.2, first_token=None, end=1.0,
              status="error", error_code="X", model_id="m", profile="geo", region=None, cost_usd=0.5,
              message="m", quota="tpm")
    b = Attempt(**kw)
    a = attempt_from(dict(vars(b)))
    assert a == b and list(vars(a)) == list(vars(b)) == list(FIELDS) and hash(a) == hash(b)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.arm = "b"  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"got 36: missing \['quota'\]"):
        attempt_from({k: v for k, v in vars(b).items() if k != "quota"})
    with pytest.raises(TypeError, match=r"got 38: missing \[\], unknown \['no_such_field'\]"):
        attempt_from({**vars(b), "no_such_field": 1})


def test_the_runners_attempts_are_the_dataclass_constructors():
    """The runner builds each Attempt's __dict__ itself (runner._record, record.attempt_from):
    under a fault storm (throttles, 5xx, dropped connections, mid-stream faults billed on
    estimated usage, timeouts, retries, 1h cache writes) every one equals Attempt(**fields),
    with its fields in declaration order (requests.jsonl writes them in that order)."""
    sc = dataclasses.replace(load(str(Path(__file__).parent / "soak" / "storm.toml")), duration=420.0)
    kept: list = []
    run_virtual(ProbeState(sc, VirtualClock(), on_attempt=kept.append), make_pricer(sc),
                EmulatorConfig.from_mapping(sc.emulator), signals=False)
    assert {a.status for a in kept} == set(STATUSES)
    assert any(a.usage_estimated for a in kept) and any(a.attempt > 1 for a in kept)
    assert any(a.cache_write_1h for a in kept)
    for a in kept:
        assert list(vars(a)) == list(FIELDS)
        assert Attempt(**vars(a)) == a
