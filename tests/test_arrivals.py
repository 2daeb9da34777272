"""Arrival processes and gap distributions, tested without a clock.

Statistical checks use fixed seeds and 5-sigma bounds, so they are deterministic
and would only fail if the math were wrong.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.scenario.arrivals import (
    Dist,
    OpenLoop,
    Stage,
    TracePoint,
    arrivals,
    describe,
    expected_count,
    offsets,
    sample,
    sample_int,
    session_turns,
)

# --------------------------------------------------------------------------- strategies

rates = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
durations = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)
stages_st = st.lists(
    st.builds(Stage, duration=st.floats(0.0, 30.0), target=st.floats(0.0, 40.0)),
    min_size=1, max_size=5,
).map(tuple)
trace_points = st.lists(
    st.builds(TracePoint, offset=st.floats(0.0, 100.0),
              input_tokens=st.none() | st.integers(1, 10_000),
              output_tokens=st.none() | st.integers(1, 10_000)),
    max_size=40,
).map(tuple)

processes = st.one_of(
    st.builds(OpenLoop, kind=st.just("constant"), rate=rates),
    st.builds(OpenLoop, kind=st.just("poisson"), rate=rates),
    st.builds(OpenLoop, kind=st.just("stages"), start_rate=st.floats(0.0, 40.0), stages=stages_st),
    st.builds(OpenLoop, kind=st.just("bursts"), every=st.floats(0.5, 30.0), size=st.integers(0, 30),
              spread=st.floats(0.0, 40.0), rate=st.floats(0.0, 5.0)),
    st.builds(OpenLoop, kind=st.just("trace"), points=trace_points),
)


def stages_R(process: OpenLoop, t: float) -> float:
    """Independent reference for R(t): midpoint-free closed form per stage."""
    total, t0, r0 = 0.0, 0.0, process.start_rate
    for s in process.stages:
        if t <= t0:
            break
        span = min(s.duration, t - t0)
        r_end = r0 + (s.target - r0) * (span / s.duration) if s.duration else r0
        total += (r0 + r_end) / 2 * span
        t0 += s.duration
        r0 = s.target
    return total


# --------------------------------------------------------------------------- every kind

@settings(max_examples=150, deadline=None)
@given(process=processes, duration=durations, seed=st.integers(0, 2**32))
def test_offsets_are_ordered_within_the_run_and_reproducible(process, duration, seed):
    got = list(offsets(process, duration, random.Random(seed)))
    assert all(0.0 <= t < duration for t in got)
    assert all(a <= b for a, b in zip(got, got[1:])), "offsets went backwards"
    assert got == list(offsets(process, duration, random.Random(seed)))
    points = list(arrivals(process, duration, random.Random(seed)))
    assert [p.offset for p in points] == got


def test_a_different_seed_gives_a_different_poisson_schedule():
    p = OpenLoop("poisson", rate=10.0)
    assert list(offsets(p, 10, random.Random(1))) != list(offsets(p, 10, random.Random(2)))


def test_offsets_are_lazy():
    # an hour at 1000/s would be 3.6M floats; taking three must not build them
    it = offsets(OpenLoop("poisson", rate=1000.0), 3600.0, random.Random(0))
    assert len([next(it) for _ in range(3)]) == 3


@pytest.mark.parametrize("kind", ["constant", "poisson", "stages", "bursts", "trace"])
def test_arrivals_carry_tokens_only_for_trace(kind):
    process = {
        "constant": OpenLoop("constant", rate=2.0),
        "poisson": OpenLoop("poisson", rate=2.0),
        "stages": OpenLoop("stages", start_rate=1.0, stages=(Stage(5.0, 3.0),)),
        "bursts": OpenLoop("bursts", every=2.0, size=3, spread=1.0),
        "trace": OpenLoop("trace", points=(TracePoint(0.5, 100, 20), TracePoint(1.5, 200, None))),
    }[kind]
    points = list(arrivals(process, 5.0, random.Random(3)))
    assert points
    if kind == "trace":
        assert [(p.input_tokens, p.output_tokens) for p in points] == [(100, 20), (200, None)]
    else:
        assert all(p.input_tokens is None and p.output_tokens is None for p in points)


# --------------------------------------------------------------------------- constant, poisson

def test_constant_spacing_is_exact_and_starts_at_zero():
    got = list(offsets(OpenLoop("constant", rate=4.0), 10.0, random.Random(0)))
    assert got == [k / 4.0 for k in range(40)]


def test_constant_count_is_what_a_user_computes_despite_float_rates():
    # 20/m for 60 s is 20 requests, though 60 * (20/60) is 19.999999999999996
    assert len(list(offsets(OpenLoop("constant", rate=20 / 60), 60.0, random.Random()))) == 20
    assert len(list(offsets(OpenLoop("constant", rate=2.5), 1.0, random.Random()))) == 3  # 0, .4, .8


def test_poisson_mean_rate_within_five_sigma():
    rate, duration = 50.0, 400.0      # 20k events expected
    n = sum(1 for _ in offsets(OpenLoop("poisson", rate=rate), duration, random.Random(12345)))
    mean = rate * duration
    assert abs(n - mean) < 5 * math.sqrt(mean)


def test_poisson_gaps_are_exponential():
    got = list(offsets(OpenLoop("poisson", rate=10.0), 2000.0, random.Random(7)))
    gaps = [b - a for a, b in zip([0.0, *got], got)]
    mean_gap = sum(gaps) / len(gaps)
    # exponential: sd = mean, so the sample mean's sd is 0.1 / sqrt(n)
    assert abs(mean_gap - 0.1) < 5 * 0.1 / math.sqrt(len(gaps))
    # P(gap > mean) = 1/e for an exponential, not 1/2 as for a symmetric spread
    share = sum(g > 0.1 for g in gaps) / len(gaps)
    assert abs(share - math.exp(-1)) < 5 * math.sqrt(math.exp(-1) * (1 - math.exp(-1)) / len(gaps))
    assert got[0] > 0.0, "poisson arrivals start after the first gap"


def test_zero_rate_and_zero_duration_give_nothing():
    for p in (OpenLoop("constant", rate=0.0), OpenLoop("poisson", rate=0.0)):
        assert list(offsets(p, 100.0, random.Random())) == []
    assert list(offsets(OpenLoop("constant", rate=10.0), 0.0, random.Random())) == []


# --------------------------------------------------------------------------- stages

@settings(max_examples=150, deadline=None)
@given(start=st.floats(0.0, 40.0), stages=stages_st, extra=st.floats(-20.0, 20.0))
def test_stages_follow_the_integral_of_the_ramp(start, stages, extra):
    process = OpenLoop("stages", start_rate=start, stages=stages)
    total_time = sum(s.duration for s in stages)
    duration = max(0.0, total_time + extra)
    got = list(offsets(process, duration, random.Random(0)))
    end = min(duration, total_time)
    area = stages_R(process, end)
    # count: the integral when whole, else one partial arrival more (ceil)
    # (within float noise of a whole number it is that number; the snap is 1e-9 relative)
    off = abs(area - round(area)) / max(1.0, area)
    if off < 1e-10:
        assert len(got) == round(area)
    elif off > 1e-8:
        assert len(got) == math.ceil(area)
    assert len(got) == expected_count(process, duration)
    # the k-th arrival is where the cumulative rate reaches k
    for k, t in enumerate(got):
        assert stages_R(process, t) == pytest.approx(k, abs=1e-6 * max(1.0, k))
        assert t < end


def test_stages_flat_stage_equals_constant():
    ramp = OpenLoop("stages", start_rate=5.0, stages=(Stage(20.0, 5.0),))
    flat = OpenLoop("constant", rate=5.0)
    assert list(offsets(ramp, 20.0, random.Random())) == pytest.approx(list(offsets(flat, 20.0, random.Random())))


def test_stages_ramp_from_zero_places_arrivals_at_square_roots():
    # rate t/10 per s: R(t) = t^2 / 20, so the k-th arrival is at sqrt(20 k)
    p = OpenLoop("stages", start_rate=0.0, stages=(Stage(100.0, 10.0),))
    got = list(offsets(p, 100.0, random.Random()))
    assert len(got) == 500
    assert got[:4] == pytest.approx([0.0, math.sqrt(20), math.sqrt(40), math.sqrt(60)])


def test_stages_counts_per_stage_window():
    # ramp up to 10/s over 60 s (300), hold 30 s (300), hold at zero 30 s (0), down over 60 s (300)
    p = OpenLoop("stages", start_rate=0.0,
                 stages=(Stage(60.0, 10.0), Stage(30.0, 10.0), Stage(30.0, 0.0), Stage(0.0, 10.0), Stage(60.0, 0.0)))
    got = list(offsets(p, 1000.0, random.Random()))
    def count(lo, hi):
        return sum(lo <= t < hi for t in got)
    assert count(0, 60) == 300
    assert count(60, 90) == 300
    # 10 -> 0 over 30 s: 150 arrivals, and none during the step back up (zero-length stage)
    assert count(90, 120) == 150
    assert count(120, 180) == 300
    assert len(got) == 1050 == expected_count(p, 1000.0)


def test_a_hold_at_zero_sends_nothing_until_the_rate_rises():
    p = OpenLoop("stages", start_rate=0.0, stages=(Stage(10.0, 0.0), Stage(10.0, 2.0)))
    got = list(offsets(p, 20.0, random.Random()))
    assert got[0] == 10.0 and len(got) == 10


def test_stages_end_with_the_last_stage_or_the_duration():
    p = OpenLoop("stages", start_rate=1.0, stages=(Stage(10.0, 1.0),))
    assert len(list(offsets(p, 100.0, random.Random()))) == 10
    assert len(list(offsets(p, 5.0, random.Random()))) == 5


# --------------------------------------------------------------------------- bursts, trace

def test_bursts_counts_and_windows():
    p = OpenLoop("bursts", every=60.0, size=50, spread=5.0)
    got = list(offsets(p, 300.0, random.Random(4)))
    assert len(got) == 250 == expected_count(p, 300.0)
    for j in range(5):
        assert sum(60 * j <= t < 60 * j + 5 for t in got) == 50


def test_overlapping_bursts_with_background_stay_sorted_and_count_right():
    p = OpenLoop("bursts", every=1.0, size=20, spread=3.0, rate=5.0)
    counts = [sum(1 for _ in offsets(p, 100.0, random.Random(s))) for s in range(20)]
    mean = sum(counts) / len(counts)
    expected = expected_count(p, 100.0)   # 98 full bursts, two cut by the end, 500 background
    assert expected == pytest.approx(98 * 20 + 20 * 2 / 3 + 20 * 1 / 3 + 500)
    assert abs(mean - expected) < 5 * math.sqrt(expected / len(counts)) + 5


def test_trace_replays_in_order_and_stops_at_duration():
    pts = (TracePoint(5.0, 1), TracePoint(1.0, 2), TracePoint(5.0, 3), TracePoint(12.0, 4))
    got = list(arrivals(OpenLoop("trace", points=pts), 10.0, random.Random()))
    assert [(p.offset, p.input_tokens) for p in got] == [(1.0, 2), (5.0, 1), (5.0, 3)]
    assert expected_count(OpenLoop("trace", points=pts), 10.0) == 3


@settings(max_examples=100, deadline=None)
@given(process=processes, duration=durations)
def test_expected_count_matches_deterministic_kinds(process, duration):
    if process.kind in ("poisson",) or (process.kind == "bursts" and (process.rate > 0 or process.spread > 0)):
        return
    got = sum(1 for _ in offsets(process, duration, random.Random(0)))
    assert got == expected_count(process, duration)


# --------------------------------------------------------------------------- distributions

def test_lognormal_median_and_p90_match_parameters():
    d = Dist("lognormal", median=300.0, p90=1200.0)
    rng = random.Random(99)
    xs = sorted(sample(d, rng) for _ in range(20_000))
    n = len(xs)
    # order-statistic sd of the sample quantile share: sqrt(p (1 - p) / n)
    for p, target in ((0.5, 300.0), (0.9, 1200.0)):
        share_below = sum(x <= target for x in xs) / n
        assert abs(share_below - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert xs[n // 2] == pytest.approx(300.0, rel=0.05)
    assert xs[int(0.9 * n)] == pytest.approx(1200.0, rel=0.07)


def test_lognormal_sigma_uses_the_normal_p90_quantile():
    assert NormalDist().inv_cdf(0.9) == pytest.approx(1.2815515655)
    d = Dist("lognormal", median=7.0, p90=7.0)
    assert sample(d, random.Random(1)) == pytest.approx(7.0)   # sigma 0: always the median


def test_dist_means():
    rng = random.Random(5)
    n = 20_000
    m = sum(sample(Dist("exponential", mean=3.0), rng) for _ in range(n)) / n
    assert abs(m - 3.0) < 5 * 3.0 / math.sqrt(n)
    u = [sample(Dist("uniform", low=2.0, high=4.0), rng) for _ in range(n)]
    assert all(2.0 <= x <= 4.0 for x in u)
    assert abs(sum(u) / n - 3.0) < 5 * (2 / math.sqrt(12)) / math.sqrt(n)
    assert sample(Dist("constant", value=1.5), rng) == 1.5
    e = {sample(Dist("empirical", values=(1.0, 5.0, 9.0)), rng) for _ in range(200)}
    assert e == {1.0, 5.0, 9.0}


dists = st.one_of(
    st.builds(Dist, kind=st.just("constant"), value=st.floats(0, 1e6)),
    st.floats(0, 1e6).flatmap(lambda lo: st.builds(Dist, kind=st.just("uniform"), low=st.just(lo),
                                                      high=st.floats(lo, lo + 1e6))),
    st.builds(Dist, kind=st.just("exponential"), mean=st.floats(0, 1e6)),
    st.floats(1e-3, 1e5).flatmap(lambda m: st.builds(Dist, kind=st.just("lognormal"), median=st.just(m),
                                                        p90=st.floats(m, m * 50))),
    st.builds(Dist, kind=st.just("empirical"),
              values=st.lists(st.floats(0, 1e6), min_size=1, max_size=10).map(tuple)),
)


@settings(max_examples=200, deadline=None)
@given(dist=dists, seed=st.integers(0, 2**32), minimum=st.integers(0, 5))
def test_samples_are_never_negative_and_ints_respect_minimum(dist, seed, minimum):
    x = sample(dist, random.Random(seed))
    assert x >= 0 and math.isfinite(x)
    assert sample(dist, random.Random(seed)) == x
    assert sample_int(dist, random.Random(seed), minimum=minimum) == max(minimum, int(x + 0.5))


@pytest.mark.parametrize("dist, message", [
    (Dist("lognormal", median=300.0, p90=100.0), "p90 (100) must be >= median (300)"),
    (Dist("lognormal", median=0.0, p90=100.0), "median must be > 0"),
    (Dist("lognormal", p90=100.0), "median is required"),
    (Dist("uniform", low=5.0, high=1.0), "low (5) must be <= high (1)"),
    (Dist("exponential", mean=-1.0), "mean must be a finite number >= 0"),
    (Dist("constant", value=float("nan")), "value must be a finite number >= 0"),
    (Dist("empirical"), "non-empty"),
    (Dist("gamma", mean=1.0), "unknown distribution 'gamma'"),
])
def test_bad_dists_say_what_was_expected(dist, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sample(dist, random.Random())


@pytest.mark.parametrize("process, message", [
    (OpenLoop("poisson", rate=-1.0), "poisson: rate must be a finite number >= 0"),
    (OpenLoop("stages"), "at least one stage"),
    (OpenLoop("stages", stages=(Stage(-1.0, 1.0),)), r"stages\[0\]: duration"),
    (OpenLoop("bursts", size=5), "every must be > 0"),
    (OpenLoop("trace", points=(TracePoint(-1.0),)), r"points\[0\].offset"),
    (OpenLoop("sine", rate=1.0), "unknown arrival kind 'sine'"),
])
def test_bad_processes_say_what_was_expected(process, message):
    with pytest.raises(ValueError, match=message):
        list(offsets(process, 10.0, random.Random()))


def test_bad_duration_is_rejected():
    with pytest.raises(ValueError, match="duration"):
        list(offsets(OpenLoop("poisson", rate=1.0), -1.0, random.Random()))


def test_session_turns_uniform_inclusive():
    rng = random.Random(2)
    seen = [session_turns(rng, 5, 8) for _ in range(2000)]
    assert set(seen) == {5, 6, 7, 8}
    assert session_turns(rng, 3, 3) == 3
    with pytest.raises(ValueError, match="1 <= min <= max"):
        session_turns(rng, 4, 2)


# --------------------------------------------------------------------------- describe

@pytest.mark.parametrize("process, text", [
    (OpenLoop("poisson", rate=20.0), "Poisson arrivals at 20/s"),
    (OpenLoop("poisson", rate=12 / 3600), "Poisson arrivals at 12/h"),
    (OpenLoop("constant", rate=0.5), "Constant arrivals at 30/m"),
    (OpenLoop("stages", start_rate=0.0, stages=(Stage(120, 10.0), Stage(360, 10.0), Stage(120, 0.0))),
     "Up to 10/s over 3 stages (10m)"),
    (OpenLoop("bursts", every=60.0, size=50, spread=5.0, rate=2.0),
     "Bursts of 50 every 1m over 5s, plus Poisson background at 2/s"),
    (OpenLoop("trace", points=(TracePoint(0.0), TracePoint(5400.0))), "Trace replay of 2 requests over 1h30m"),
])
def test_describe(process, text):
    assert describe(process) == text


def _bursts_expected_by_hand(p: OpenLoop, duration: float) -> float:
    """Burst j at j*every keeps the share of its spread that falls before the end."""
    total, j = p.rate * duration, 0
    while j * p.every < duration:
        room = duration - j * p.every
        total += p.size * (1.0 if p.spread == 0 or room >= p.spread else room / p.spread)
        j += 1
    return total


@settings(max_examples=200, deadline=None)
@given(every=st.floats(0.5, 100), size=st.integers(1, 50), spread=st.floats(0, 500),
       duration=st.floats(1, 2000), rate=st.floats(0, 5))
def test_bursts_expected_count_closed_form_matches_burst_by_burst(every, size, spread, duration, rate):
    p = OpenLoop("bursts", every=every, size=size, spread=spread, rate=rate)
    assert expected_count(p, duration) == pytest.approx(_bursts_expected_by_hand(p, duration), rel=1e-9, abs=1e-6)


def test_bursts_expected_count_is_immediate_when_the_spread_covers_billions_of_bursts():
    import time

    p = OpenLoop("bursts", every=0.001, size=1, spread=999 * 3600.0)
    t0 = time.monotonic()
    n = expected_count(p, 1000 * 3600.0)   # looped over ~3.6e9 cut bursts before
    assert time.monotonic() - t0 < 0.1
    assert n == pytest.approx(3.6e9 * (1 - 999 / 1000 / 2), rel=1e-6)
