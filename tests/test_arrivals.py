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

from loadgen.scenario import arrivals, distributions, loads
from loadgen.scenario.arrivals import PROCESSES, Stage, TracePoint
from loadgen.scenario.distributions import DISTRIBUTIONS, Z90, sample_int, session_turns

SCENARIO = """\
duration = "1m"
[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 256
[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 20
output_tokens = OUTPUT
[arrivals]
kind = "constant"
rate = "1/s"
"""

# --------------------------------------------------------------------------- strategies

rates = st.floats(min_value=1e-3, max_value=50.0, allow_nan=False)
durations = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)
stages_st = st.lists(
    st.builds(Stage, duration=st.floats(1e-3, 30.0), target=st.floats(0.0, 40.0)),
    min_size=1, max_size=5,
).map(tuple)
trace_points = st.lists(
    st.builds(TracePoint, offset=st.floats(0.0, 100.0),
              input_tokens=st.none() | st.integers(1, 10_000),
              output_tokens=st.none() | st.integers(1, 10_000)),
    min_size=1, max_size=40,
).map(tuple)

processes = st.one_of(
    st.builds(arrivals.Constant, rate=rates),
    st.builds(arrivals.Poisson, rate=rates),
    st.builds(arrivals.Stages, start_rate=st.floats(1e-3, 40.0), stages=stages_st),
    st.builds(arrivals.Bursts, every=st.floats(0.5, 30.0), size=st.integers(1, 30),
              spread=st.floats(0.0, 40.0), rate=st.floats(0.0, 5.0)),
    st.builds(arrivals.Trace, points=trace_points),
)


def stages_R(process: arrivals.Stages, t: float) -> float:
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
    got = list(process.offsets(duration, random.Random(seed)))
    assert all(0.0 <= t < duration for t in got)
    assert all(a <= b for a, b in zip(got, got[1:])), "offsets went backwards"
    assert got == list(process.offsets(duration, random.Random(seed)))
    points = list(process.arrivals(duration, random.Random(seed)))
    assert [p.offset for p in points] == got


def test_a_different_seed_gives_a_different_poisson_schedule():
    p = arrivals.Poisson(rate=10.0)
    assert list(p.offsets(10, random.Random(1))) != list(p.offsets(10, random.Random(2)))


def test_offsets_are_lazy():
    # an hour at 1000/s would be 3.6M floats; taking three must not build them
    it = arrivals.Poisson(rate=1000.0).offsets(3600.0, random.Random(0))
    assert len([next(it) for _ in range(3)]) == 3


@pytest.mark.parametrize("kind", ["constant", "poisson", "stages", "bursts", "trace"])
def test_arrivals_carry_tokens_only_for_trace(kind):
    process = {
        "constant": arrivals.Constant(rate=2.0),
        "poisson": arrivals.Poisson(rate=2.0),
        "stages": arrivals.Stages(start_rate=1.0, stages=(Stage(5.0, 3.0),)),
        "bursts": arrivals.Bursts(every=2.0, size=3, spread=1.0),
        "trace": arrivals.Trace(points=(TracePoint(0.5, 100, 20), TracePoint(1.5, 200, None))),
    }[kind]
    points = list(process.arrivals(5.0, random.Random(3)))
    assert points
    if kind == "trace":
        assert [(p.input_tokens, p.output_tokens) for p in points] == [(100, 20), (200, None)]
    else:
        assert all(p.input_tokens is None and p.output_tokens is None for p in points)


# --------------------------------------------------------------------------- constant, poisson

def test_constant_spacing_is_exact_and_starts_at_zero():
    got = list(arrivals.Constant(rate=4.0).offsets(10.0, random.Random(0)))
    assert got == [k / 4.0 for k in range(40)]


def test_constant_count_is_what_a_user_computes_despite_float_rates():
    # 20/m for 60 s is 20 requests, though 60 * (20/60) is 19.999999999999996
    assert len(list(arrivals.Constant(rate=20 / 60).offsets(60.0, random.Random()))) == 20
    assert len(list(arrivals.Constant(rate=2.5).offsets(1.0, random.Random()))) == 3  # 0, .4, .8


def test_poisson_mean_rate_within_five_sigma():
    rate, duration = 50.0, 400.0      # 20k events expected
    n = sum(1 for _ in arrivals.Poisson(rate=rate).offsets(duration, random.Random(12345)))
    mean = rate * duration
    assert abs(n - mean) < 5 * math.sqrt(mean)


def test_poisson_gaps_are_exponential():
    got = list(arrivals.Poisson(rate=10.0).offsets(2000.0, random.Random(7)))
    gaps = [b - a for a, b in zip([0.0, *got], got)]
    mean_gap = sum(gaps) / len(gaps)
    # exponential: sd = mean, so the sample mean's sd is 0.1 / sqrt(n)
    assert abs(mean_gap - 0.1) < 5 * 0.1 / math.sqrt(len(gaps))
    # P(gap > mean) = 1/e for an exponential, not 1/2 as for a symmetric spread
    share = sum(g > 0.1 for g in gaps) / len(gaps)
    assert abs(share - math.exp(-1)) < 5 * math.sqrt(math.exp(-1) * (1 - math.exp(-1)) / len(gaps))
    assert got[0] > 0.0, "poisson arrivals start after the first gap"


def test_zero_duration_gives_nothing():
    for p in (arrivals.Constant(rate=10.0), arrivals.Poisson(rate=10.0)):
        assert list(p.offsets(0.0, random.Random())) == []


# --------------------------------------------------------------------------- stages

@settings(max_examples=150, deadline=None)
@given(start=st.floats(1e-3, 40.0), stages=stages_st, extra=st.floats(-20.0, 20.0))
def test_stages_follow_the_integral_of_the_ramp(start, stages, extra):
    process = arrivals.Stages(start_rate=start, stages=stages)
    total_time = sum(s.duration for s in stages)
    duration = max(0.0, total_time + extra)
    got = list(process.offsets(duration, random.Random(0)))
    end = min(duration, total_time)
    area = stages_R(process, end)
    # count: the integral when whole, else one partial arrival more (ceil)
    # (within float noise of a whole number it is that number; the snap is 1e-9 relative)
    off = abs(area - round(area)) / max(1.0, area)
    if off < 1e-10:
        assert len(got) == round(area)
    elif off > 1e-8:
        assert len(got) == math.ceil(area)
    assert len(got) == process.expected_count(duration)
    # the k-th arrival is where the cumulative rate reaches k
    for k, t in enumerate(got):
        assert stages_R(process, t) == pytest.approx(k, abs=1e-6 * max(1.0, k))
        assert t < end


def test_stages_flat_stage_equals_constant():
    ramp = arrivals.Stages(start_rate=5.0, stages=(Stage(20.0, 5.0),))
    flat = arrivals.Constant(rate=5.0)
    assert list(ramp.offsets(20.0, random.Random())) == pytest.approx(list(flat.offsets(20.0, random.Random())))


def test_stages_ramp_from_zero_places_arrivals_at_square_roots():
    # rate t/10 per s: R(t) = t^2 / 20, so the k-th arrival is at sqrt(20 k)
    p = arrivals.Stages(start_rate=0.0, stages=(Stage(100.0, 10.0),))
    got = list(p.offsets(100.0, random.Random()))
    assert len(got) == 500
    assert got[:4] == pytest.approx([0.0, math.sqrt(20), math.sqrt(40), math.sqrt(60)])


def test_stages_counts_per_stage_window():
    # ramp up to 10/s over 60 s (300), hold 30 s (300), hold at zero 30 s (0), down over 60 s (300)
    p = arrivals.Stages(start_rate=0.0,
                 stages=(Stage(60.0, 10.0), Stage(30.0, 10.0), Stage(30.0, 0.0), Stage(30.0, 0.0), Stage(60.0, 10.0)))
    got = list(p.offsets(1000.0, random.Random()))
    def count(lo, hi):
        return sum(lo <= t < hi for t in got)
    assert count(0, 60) == 300
    assert count(60, 90) == 300
    # 10 -> 0 over 30 s: 150 arrivals, none during the hold at zero, then 0 -> 10 over 60 s
    assert count(90, 120) == 150
    assert count(120, 150) == 0
    assert count(150, 210) == 300
    assert len(got) == 1050 == p.expected_count(1000.0)


def test_a_hold_at_zero_sends_nothing_until_the_rate_rises():
    p = arrivals.Stages(start_rate=0.0, stages=(Stage(10.0, 0.0), Stage(10.0, 2.0)))
    got = list(p.offsets(20.0, random.Random()))
    assert got[0] == 10.0 and len(got) == 10


def test_stages_end_with_the_last_stage_or_the_duration():
    p = arrivals.Stages(start_rate=1.0, stages=(Stage(10.0, 1.0),))
    assert len(list(p.offsets(100.0, random.Random()))) == 10
    assert len(list(p.offsets(5.0, random.Random()))) == 5


# --------------------------------------------------------------------------- bursts, trace

def test_bursts_counts_and_windows():
    p = arrivals.Bursts(every=60.0, size=50, spread=5.0)
    got = list(p.offsets(300.0, random.Random(4)))
    assert len(got) == 250 == p.expected_count(300.0)
    for j in range(5):
        assert sum(60 * j <= t < 60 * j + 5 for t in got) == 50


def test_overlapping_bursts_with_background_stay_sorted_and_count_right():
    p = arrivals.Bursts(every=1.0, size=20, spread=3.0, rate=5.0)
    counts = [sum(1 for _ in p.offsets(100.0, random.Random(s))) for s in range(20)]
    mean = sum(counts) / len(counts)
    expected = p.expected_count(100.0)   # 98 full bursts, two cut by the end, 500 background
    assert expected == pytest.approx(98 * 20 + 20 * 2 / 3 + 20 * 1 / 3 + 500)
    assert abs(mean - expected) < 5 * math.sqrt(expected / len(counts)) + 5


def test_trace_replays_in_order_and_stops_at_duration():
    pts = (TracePoint(5.0, 1), TracePoint(1.0, 2), TracePoint(5.0, 3), TracePoint(12.0, 4))
    got = list(arrivals.Trace(points=pts).arrivals(10.0, random.Random()))
    assert [(p.offset, p.input_tokens) for p in got] == [(1.0, 2), (5.0, 1), (5.0, 3)]
    assert arrivals.Trace(points=pts).expected_count(10.0) == 3


@settings(max_examples=100, deadline=None)
@given(process=processes, duration=durations)
def test_expected_count_matches_deterministic_kinds(process, duration):
    if process.kind in ("poisson",) or (process.kind == "bursts" and (process.rate > 0 or process.spread > 0)):
        return
    got = sum(1 for _ in process.offsets(duration, random.Random(0)))
    assert got == process.expected_count(duration)


# --------------------------------------------------------------------------- distributions

def test_lognormal_median_and_p90_match_parameters():
    d = distributions.Lognormal(median=300.0, p90=1200.0)
    rng = random.Random(99)
    xs = sorted(d.sample(rng) for _ in range(20_000))
    n = len(xs)
    # order-statistic sd of the sample quantile share: sqrt(p (1 - p) / n)
    for p, target in ((0.5, 300.0), (0.9, 1200.0)):
        share_below = sum(x <= target for x in xs) / n
        assert abs(share_below - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert xs[n // 2] == pytest.approx(300.0, rel=0.05)
    assert xs[int(0.9 * n)] == pytest.approx(1200.0, rel=0.07)


def test_lognormal_sigma_uses_the_normal_p90_quantile():
    assert Z90 == NormalDist().inv_cdf(0.9) == pytest.approx(1.2815515655)
    d = distributions.Lognormal(median=7.0, p90=7.0 * math.exp(Z90))   # sigma 1
    rng = random.Random(1)
    logs = [math.log(d.sample(rng) / 7.0) for _ in range(4000)]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    assert abs(mean) < 5 / math.sqrt(len(logs)) and abs(sd - 1.0) < 5 / math.sqrt(2 * len(logs))


@pytest.mark.parametrize("p90", [300.0, 299.0])
def test_lognormal_p90_at_or_below_the_median_is_refused(p90):
    # At p90 == median sigma is 0: a constant in disguise, which dist = "constant" says
    # plainly. One rule, for files and for code alike.
    with pytest.raises(ValueError, match=r"lognormal: p90: p90 \(\d+\) must be above the median \(300\)"):
        distributions.Lognormal(median=300.0, p90=p90)
    assert distributions.Lognormal.problems({"median": 300.0, "p90": p90}, str) == [
        ("p90", f"p90 ({p90}) must be above the median (300.0): 90 % of draws fall below p90")]


def test_dist_means():
    rng = random.Random(5)
    n = 20_000
    m = sum(distributions.Exponential(mean=3.0).sample(rng) for _ in range(n)) / n
    assert abs(m - 3.0) < 5 * 3.0 / math.sqrt(n)
    u = [distributions.Uniform(low=2.0, high=4.0).sample(rng) for _ in range(n)]
    assert all(2.0 <= x <= 4.0 for x in u)
    assert abs(sum(u) / n - 3.0) < 5 * (2 / math.sqrt(12)) / math.sqrt(n)
    assert distributions.Constant(value=1.5).sample(rng) == 1.5
    e = {distributions.Empirical(values=(1.0, 5.0, 9.0)).sample(rng) for _ in range(200)}
    assert e == {1.0, 5.0, 9.0}


dists = st.one_of(
    st.builds(distributions.Constant, value=st.floats(1e-6, 1e6)),
    st.floats(0, 1e6).flatmap(lambda lo: st.builds(distributions.Uniform, low=st.just(lo),
                                                   high=st.floats(max(lo, 1e-6), lo + 1e6))),
    st.builds(distributions.Exponential, mean=st.floats(1e-6, 1e6)),
    st.floats(1e-3, 1e5).flatmap(lambda m: st.builds(distributions.Lognormal, median=st.just(m),
                                                     p90=st.floats(m * 1.001, m * 50))),
    st.builds(distributions.Empirical, values=st.lists(st.floats(0, 1e6), min_size=1, max_size=10).map(tuple)),
)


@settings(max_examples=200, deadline=None)
@given(dist=dists, seed=st.integers(0, 2**32), minimum=st.integers(0, 5))
def test_samples_are_never_negative_and_ints_respect_minimum(dist, seed, minimum):
    x = dist.sample(random.Random(seed))
    assert x >= 0 and math.isfinite(x)
    assert dist.sample(random.Random(seed)) == x
    assert sample_int(dist, random.Random(seed), minimum=minimum) == max(minimum, int(x + 0.5))


# --------------------------------------------------------------------------- the registries

def _dist_toml(d) -> str:
    if isinstance(d, distributions.Empirical):
        return "values = [" + ", ".join(repr(v) for v in d.values) + "]"
    return "\n".join(f"{k} = {getattr(d, k)!r}" for k in type(d).keys)


@settings(max_examples=60, deadline=None)
@given(dist=dists, seed=st.integers(0, 2**32))
def test_every_distribution_round_trips_through_a_scenario_file_and_samples_within_its_bounds(dist, seed):
    # each kind reads its own table (output_tokens is in tokens, plain numbers), says what it
    # is, and draws inside its support
    assert set(DISTRIBUTIONS) == {"constant", "uniform", "exponential", "lognormal", "empirical"}
    sc = loads(SCENARIO.replace("OUTPUT", f'{{ dist = "{dist.kind}", {_dist_toml(dist).replace(chr(10), ", ")} }}'))
    got = sc.workload.output_tokens
    assert got == dist and type(got) is DISTRIBUTIONS[dist.kind]
    assert got.describe()
    x = got.sample(random.Random(seed))
    if isinstance(dist, distributions.Constant):
        assert x == dist.value
    elif isinstance(dist, distributions.Uniform):
        assert dist.low <= x <= dist.high
    elif isinstance(dist, distributions.Empirical):
        assert x in dist.values
    else:
        assert 0 <= x < math.inf


@settings(max_examples=60, deadline=None)
@given(process=processes, seed=st.integers(0, 2**32))
def test_every_process_kind_describes_itself_and_thins_to_the_same_kind(process, seed):
    assert set(PROCESSES) == {"constant", "poisson", "stages", "bursts", "trace"}
    assert type(process) is PROCESSES[process.kind]
    assert process.describe()
    thin = process.thinned(0.5)
    assert type(thin) is type(process)
    assert thin.is_steady == process.is_steady and thin.replay == process.replay
    got = list(thin.offsets(30.0, random.Random(seed)))
    assert all(0 <= t < 30.0 for t in got)


@pytest.mark.parametrize("make, message", [
    (lambda: distributions.Lognormal(median=0.0, p90=100.0), "lognormal: median: expected a number > 0"),
    (lambda: distributions.Uniform(low=5.0, high=1.0), r"uniform: low: uniform low \(5\) is above high \(1\)"),
    (lambda: distributions.Exponential(mean=-1.0), "exponential: mean: expected a number > 0"),
    (lambda: distributions.Constant(value=float("nan")), "constant: value: expected a finite number"),
    (lambda: distributions.Empirical(values=()), "empirical: values: expected a non-empty"),
    (lambda: arrivals.Poisson(rate=-1.0), "poisson: rate: expected a number > 0"),
    (lambda: arrivals.Constant(rate=0.0), "constant: rate: expected a number > 0"),
    (lambda: arrivals.Stages(start_rate=0.0, stages=()), "at least one stage"),
    (lambda: arrivals.Stages(start_rate=1.0, stages=(Stage(-1.0, 1.0),)), r"stages\[0\]\.duration"),
    (lambda: arrivals.Stages(start_rate=0.0, stages=(Stage(5.0, 0.0),)), "every rate is zero"),
    (lambda: arrivals.Bursts(every=0.0, size=5), "bursts: every: expected a number > 0"),
    (lambda: arrivals.Bursts(every=1.0, size=0), "bursts: size: expected a whole number >= 1"),
    (lambda: arrivals.Trace(points=(TracePoint(-1.0),)), r"points\[0\]\.offset"),
    (lambda: arrivals.Trace(points=()), "at least one request"),
])
def test_a_kind_made_in_code_obeys_the_rules_a_scenario_file_does(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_duration_is_rejected():
    with pytest.raises(ValueError, match="duration"):
        list(arrivals.Poisson(rate=1.0).offsets(-1.0, random.Random()))


def test_session_turns_uniform_inclusive():
    rng = random.Random(2)
    seen = [session_turns(rng, 5, 8) for _ in range(2000)]
    assert set(seen) == {5, 6, 7, 8}
    assert session_turns(rng, 3, 3) == 3
    with pytest.raises(ValueError, match="1 <= min <= max"):
        session_turns(rng, 4, 2)


# --------------------------------------------------------------------------- describe

@pytest.mark.parametrize("process, text", [
    (arrivals.Poisson(rate=20.0), "Poisson arrivals at 20/s"),
    (arrivals.Poisson(rate=12 / 3600), "Poisson arrivals at 12/h"),
    (arrivals.Constant(rate=0.5), "Constant arrivals at 30/m"),
    (arrivals.Stages(start_rate=0.0, stages=(Stage(120, 10.0), Stage(360, 10.0), Stage(120, 0.0))),
     "Up to 10/s over 3 stages (10m)"),
    (arrivals.Bursts(every=60.0, size=50, spread=5.0, rate=2.0),
     "Bursts of 50 every 1m over 5s, plus Poisson background at 2/s"),
    (arrivals.Trace(points=(TracePoint(0.0), TracePoint(5400.0))), "Trace replay of 2 requests over 1h30m"),
])
def test_describe(process, text):
    assert process.describe() == text


def _bursts_expected_by_hand(p: arrivals.Bursts, duration: float) -> float:
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
    p = arrivals.Bursts(every=every, size=size, spread=spread, rate=rate)
    assert p.expected_count(duration) == pytest.approx(_bursts_expected_by_hand(p, duration), rel=1e-9, abs=1e-6)


def test_bursts_expected_count_is_immediate_when_the_spread_covers_billions_of_bursts():
    import time

    p = arrivals.Bursts(every=0.001, size=1, spread=999 * 3600.0)
    # CPU time, not wall: a loaded machine can leave the process unscheduled for longer
    # than the bound, and what the test rules out is work (a loop), not waiting
    t0 = time.process_time()
    n = p.expected_count(1000 * 3600.0)   # looped over ~3.6e9 cut bursts before
    assert time.process_time() - t0 < 0.1
    assert n == pytest.approx(3.6e9 * (1 - 999 / 1000 / 2), rel=1e-6)
