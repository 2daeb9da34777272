"""Arrival processes and gap distributions: pure, seeded, no clock.

Everything here is a function of its arguments and a `random.Random` passed in:
no clock, no sleeping, no global random state. The runner turns offsets into
sleeps; tests and `loadgen validate` read them directly.

Processes (`OpenLoop.kind`), all yielding offsets t in seconds from run start,
non-decreasing, 0 <= t < duration, generated lazily:

  constant  t_k = k / rate, k = 0, 1, ...                 (count = ceil(rate * D))
  poisson   t_k = t_{k-1} + Exp(rate), t_0 = Exp(rate)    (E[count] = rate * D)
  stages    rate r(t) piecewise linear from start_rate through each stage's
            target; with R(t) = integral of r over [0, t], the k-th arrival
            (k = 0, 1, ...) is at the moment R(t) passes k. Count = ceil(R(end)).
  bursts    at j * every, `size` arrivals uniform on [j*every, j*every + spread),
            plus background poisson at `rate`
  trace     the given points, sorted by offset

"Count = ceil(...)" means: exactly the integral when it is whole (600 for
10/s over 60 s), one more partial arrival otherwise. Stages use the same rule as
constant so a single flat stage is the constant process, arrival for arrival.
(k6's ramping-arrival-rate counts from k = 1, i.e. floor; with a whole integral
its last arrival lands exactly on the end, outside our [0, duration).)
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterator

# z such that P(Z <= z) = 0.9 for a standard normal; turns (median, p90) into sigma.
Z90 = NormalDist().inv_cdf(0.9)

# Float sums of rates x seconds land a hair off whole numbers (20/m x 60 s =
# 19.999999999999996); snap within this relative tolerance before ceil so the
# count a user computes by hand is the count they get.
_SNAP = 1e-9


@dataclass(frozen=True)
class Dist:
    """A distribution of non-negative numbers (seconds or tokens).

    kind: "constant" (value), "uniform" (low, high), "exponential" (mean),
    "lognormal" (median, p90), "empirical" (values: sampled uniformly).
    """

    kind: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Stage:
    duration: float    # seconds
    target: float      # rate (per second) reached at the end of the stage, linearly from the previous


@dataclass(frozen=True)
class TracePoint:
    offset: float                      # seconds from run start (after time scaling)
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class OpenLoop:
    """An open-loop arrival process.

    kind: "constant" (rate), "poisson" (rate), "stages" (start_rate, stages),
    "bursts" (every, size, spread, rate between bursts), "trace" (points).
    Rates are per second.
    """

    kind: str
    rate: float = 0.0
    start_rate: float = 0.0
    stages: tuple[Stage, ...] = ()
    every: float = 0.0
    size: int = 0
    spread: float = 0.0
    points: tuple[TracePoint, ...] = ()


DIST_KINDS = ("constant", "uniform", "exponential", "lognormal", "empirical")
PROCESS_KINDS = ("constant", "poisson", "stages", "bursts", "trace")


# --------------------------------------------------------------------------- validation

def _nonneg(what: str, x: float | None) -> float:
    if x is None:
        raise ValueError(f"{what} is required (a number >= 0)")
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {x!r}")
    return float(x)


def check_dist(dist: Dist) -> None:
    """Raise ValueError (saying what was expected) if `dist` cannot be sampled."""
    k = dist.kind
    if k == "constant":
        _nonneg("constant: value", dist.value)
    elif k == "uniform":
        low, high = _nonneg("uniform: low", dist.low), _nonneg("uniform: high", dist.high)
        if low > high:
            raise ValueError(f"uniform: low ({low:g}) must be <= high ({high:g})")
    elif k == "exponential":
        _nonneg("exponential: mean", dist.mean)
    elif k == "lognormal":
        median, p90 = _nonneg("lognormal: median", dist.median), _nonneg("lognormal: p90", dist.p90)
        if median <= 0:
            raise ValueError(f"lognormal: median must be > 0, got {median:g}")
        if p90 < median:
            raise ValueError(f"lognormal: p90 ({p90:g}) must be >= median ({median:g})")
    elif k == "empirical":
        if not dist.values:
            raise ValueError("empirical: values must be a non-empty list of numbers >= 0")
        for i, v in enumerate(dist.values):
            _nonneg(f"empirical: values[{i}]", v)
    else:
        raise ValueError(f"unknown distribution {k!r}; expected one of {', '.join(DIST_KINDS)}")


def check_process(process: OpenLoop) -> None:
    """Raise ValueError (saying what was expected) if `process` cannot generate arrivals."""
    k = process.kind
    if k in ("constant", "poisson"):
        _nonneg(f"{k}: rate", process.rate)
    elif k == "stages":
        _nonneg("stages: start_rate", process.start_rate)
        if not process.stages:
            raise ValueError("stages: at least one stage {duration, target} is required")
        for i, s in enumerate(process.stages):
            _nonneg(f"stages[{i}]: duration", s.duration)
            _nonneg(f"stages[{i}]: target", s.target)
    elif k == "bursts":
        _nonneg("bursts: rate", process.rate)
        _nonneg("bursts: spread", process.spread)
        if isinstance(process.size, bool) or not isinstance(process.size, int) or process.size < 0:
            raise ValueError(f"bursts: size must be a whole number >= 0, got {process.size!r}")
        if _nonneg("bursts: every", process.every) <= 0 and process.size > 0:
            raise ValueError("bursts: every must be > 0 seconds")
    elif k == "trace":
        for i, p in enumerate(process.points):
            _nonneg(f"trace: points[{i}].offset", p.offset)
    else:
        raise ValueError(f"unknown arrival kind {k!r}; expected one of {', '.join(PROCESS_KINDS)}")


def _check_duration(duration: float) -> float:
    return _nonneg("duration (seconds)", duration)


def _ceil(x: float) -> int:
    """ceil(x), but a value within _SNAP of a whole number counts as that number."""
    n = round(x)
    if abs(x - n) <= _SNAP * max(1.0, abs(x)):
        return int(n)
    return math.ceil(x)


# --------------------------------------------------------------------------- distributions

def sample(dist: Dist, rng: random.Random) -> float:
    """One draw from `dist`, in the dist's own unit (seconds or tokens); never negative.

    lognormal: ln X ~ Normal(mu, sigma) with mu = ln(median) and
    sigma = (ln(p90) - ln(median)) / z90, z90 = Phi^-1(0.9) ~= 1.2816,
    so P(X <= median) = 0.5 and P(X <= p90) = 0.9.
    """
    check_dist(dist)
    k = dist.kind
    if k == "constant":
        return float(dist.value)  # type: ignore[arg-type]
    if k == "uniform":
        return rng.uniform(dist.low, dist.high)  # type: ignore[arg-type]
    if k == "exponential":
        return rng.expovariate(1.0 / dist.mean) if dist.mean else 0.0
    if k == "lognormal":
        mu = math.log(dist.median)  # type: ignore[arg-type]
        sigma = (math.log(dist.p90) - mu) / Z90  # type: ignore[arg-type]
        return rng.lognormvariate(mu, sigma)
    return float(rng.choice(dist.values))  # empirical


def sample_int(dist: Dist, rng: random.Random, *, minimum: int = 1) -> int:
    """One draw from `dist` rounded half-up to a whole count (tokens), at least `minimum`."""
    return max(minimum, int(sample(dist, rng) + 0.5))


def session_turns(rng: random.Random, turns_min: int, turns_max: int) -> int:
    """Turns in one agent session: uniform over the whole numbers turns_min..turns_max inclusive."""
    if not 1 <= turns_min <= turns_max:
        raise ValueError(f"turns: expected 1 <= min <= max, got min={turns_min!r}, max={turns_max!r}")
    return rng.randint(turns_min, turns_max)


# --------------------------------------------------------------------------- processes

def _constant(rate: float, duration: float) -> Iterator[float]:
    """t_k = k / rate for k = 0 .. ceil(rate * duration) - 1 (computed, not summed: no drift)."""
    if rate <= 0:
        return
    for k in range(_ceil(rate * duration)):
        t = k / rate
        if t >= duration:  # float guard; _ceil already stops here
            return
        yield t


def _poisson(rate: float, duration: float, rng: random.Random) -> Iterator[float]:
    """Exponential gaps with mean 1/rate; the first arrival after the first gap."""
    if rate <= 0:
        return
    expo = rng.expovariate
    t = expo(rate)
    while t < duration:
        yield t
        t += expo(rate)


def _segments(process: OpenLoop) -> list[tuple[float, float, float, float, float]]:
    """(t0, d, r0, r1, R0) per stage: start time, length (s), rates at ends (/s), R(t0)."""
    out, t0, r0, area = [], 0.0, float(process.start_rate), 0.0
    for s in process.stages:
        r1 = float(s.target)
        out.append((t0, float(s.duration), r0, r1, area))
        area += (r0 + r1) / 2 * s.duration
        t0 += s.duration
        r0 = r1
    return out


def _stages_integral(process: OpenLoop, until: float) -> float:
    """R(until): expected arrivals over [0, until) under the piecewise-linear rate."""
    total = 0.0
    for t0, d, r0, r1, _ in _segments(process):
        if until <= t0:
            break
        s = min(d, until - t0)
        if s > 0:
            # trapezoid to the rate at t0 + s; stays finite for subnormal stage lengths
            total += (r0 + (r0 + (r1 - r0) * (s / d))) / 2 * s
    return total


def _stages(process: OpenLoop, duration: float) -> Iterator[float]:
    """k-th arrival at the time R(t) passes k, for k = 0 .. ceil(R(end)) - 1.

    In a segment starting at t0 with rate r0 rising linearly to r1 over d seconds,
    R(t0 + s) = R0 + r0 s + a s^2, a = (r1 - r0) / (2 d). For c = k - R0 the root
    s = 2c / (r0 + sqrt(r0^2 + 4 a c)) is exact, needs no division by a (flat
    segments) and stays finite when r0 = 0 (a ramp from zero). Segment i owns the
    k with R0_i <= k < R0_{i+1}, so zero-rate holds own none.
    """
    segs = [g for g in _segments(process) if g[1] > 0 and (g[2] > 0 or g[3] > 0)]
    end = min(duration, sum(s.duration for s in process.stages))
    n = _ceil(_stages_integral(process, end))
    i = 0
    for k in range(n):
        # move to the segment that owns k; the last segment takes float leftovers
        while i + 1 < len(segs) and k >= segs[i + 1][4]:
            i += 1
        t0, d, r0, r1, area0 = segs[i]
        c = k - area0
        if c <= 0:
            s = 0.0
        else:
            a = (r1 - r0) / (2 * d)
            s = 2 * c / (r0 + math.sqrt(max(0.0, r0 * r0 + 4 * a * c)))
        t = t0 + min(s, d)
        if t >= end:
            return
        yield t


def _bursts(process: OpenLoop, duration: float, rng: random.Random) -> Iterator[float]:
    """Bursts at j * every, each `size` arrivals uniform over `spread` s, merged with
    background poisson at `rate`.

    Bursts may overlap (spread > every), so pending arrivals wait in a heap and leave
    once the next burst's start passes them: everything later comes after that start.
    The background draws from its own generator, seeded from `rng` up front, so burst
    positions do not depend on how the two streams interleave.
    """
    background = _poisson(process.rate, duration, random.Random(rng.getrandbits(64)))

    def burst_stream() -> Iterator[float]:
        if process.size <= 0:
            return
        pending: list[float] = []
        j = 0
        while True:
            start = j * process.every
            if start >= duration:
                break
            for _ in range(process.size):
                t = start + process.spread * rng.random()
                if t < duration:
                    heapq.heappush(pending, t)
            j += 1
            nxt = j * process.every
            while pending and pending[0] < nxt:
                yield heapq.heappop(pending)
        while pending:
            yield heapq.heappop(pending)

    return heapq.merge(burst_stream(), background)


def _trace(process: OpenLoop, duration: float) -> Iterator[TracePoint]:
    """The points in offset order (a stable sort: equal offsets keep file order), < duration."""
    points = process.points
    if any(points[i].offset > points[i + 1].offset for i in range(len(points) - 1)):
        points = tuple(sorted(points, key=lambda p: p.offset))
    for p in points:
        if p.offset >= duration:
            return
        yield p


def offsets(process: OpenLoop, duration: float, rng: random.Random) -> Iterator[float]:
    """Intended start offsets (seconds from run start), non-decreasing, all in [0, duration).

    Lazy: a one-hour 1000/s run is never a list. Same process, duration and rng state
    -> the same offsets. Raises ValueError on a malformed process.
    """
    check_process(process)
    duration = _check_duration(duration)
    k = process.kind
    if k == "constant":
        return _constant(process.rate, duration)
    if k == "poisson":
        return _poisson(process.rate, duration, rng)
    if k == "stages":
        return _stages(process, duration)
    if k == "bursts":
        return _bursts(process, duration, rng)
    return (p.offset for p in _trace(process, duration))


def arrivals(process: OpenLoop, duration: float, rng: random.Random) -> Iterator[TracePoint]:
    """Like `offsets`, as TracePoints: trace replay carries its per-request token
    counts, every other kind yields TracePoint(offset) with the token fields None.
    """
    if process.kind == "trace":
        check_process(process)
        return _trace(process, _check_duration(duration))
    return (TracePoint(t) for t in offsets(process, duration, rng))


# --------------------------------------------------------------------------- plans

def expected_count(process: OpenLoop, duration: float) -> float:
    """Arrivals expected over [0, duration).

    Exact for the deterministic kinds (constant, stages, trace: what `offsets`
    yields); the mean for poisson (rate x duration) and bursts (whole bursts,
    the share of a burst cut by the end, plus the background's rate x duration).
    """
    check_process(process)
    duration = _check_duration(duration)
    k = process.kind
    if k == "constant":
        return float(_ceil(process.rate * duration)) if process.rate > 0 else 0.0
    if k == "poisson":
        return process.rate * duration
    if k == "stages":
        end = min(duration, sum(s.duration for s in process.stages))
        return float(_ceil(_stages_integral(process, end)))
    if k == "bursts":
        total = process.rate * duration
        if process.size > 0:
            every, spread = process.every, process.spread
            n = math.ceil(duration / every)       # bursts start at j * every < duration
            while n > 0 and (n - 1) * every >= duration:
                n -= 1
            while n * every < duration:
                n += 1
            # bursts before `whole` end inside the run; later ones lose the share past the end
            whole = min(n, max(0, math.floor((duration - spread) / every) + 1))
            total += process.size * whole
            # the rest (j = whole .. n-1) lose the share past the end: each keeps
            # (duration - j * every) / spread, summed in closed form (an arithmetic series;
            # a loop here ran for hours when spread spans billions of bursts)
            cut = n - whole
            if cut > 0:
                total += process.size * (cut * duration - every * (whole + n - 1) * cut / 2) / spread
        return total
    return float(sum(1 for p in process.points if p.offset < duration))


def _num(x: float) -> str:
    """Three significant figures, no exponent, no trailing zeros: 20, 0.333, 1500."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{round(x, decimals):.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{round(x):d}"


def _rate(per_s: float) -> str:
    """A rate in the largest unit that keeps it >= 1: 20/s, 30/m, 12/h."""
    for scale, unit in ((1, "s"), (60, "m"), (3600, "h")):
        if per_s * scale >= 1 or unit == "h":
            return f"{_num(per_s * scale)}/{unit}"
    raise AssertionError  # unreachable


def _dur(seconds: float) -> str:
    """90 -> 1m30s, 3600 -> 1h, 2.5 -> 2.5s."""
    if seconds < 60:
        return f"{_num(seconds)}s"
    h, rest = divmod(round(seconds), 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v)


def describe(process: OpenLoop) -> str:
    """One line for plans, like k6's executor descriptions."""
    k = process.kind
    if k == "constant":
        return f"Constant arrivals at {_rate(process.rate)}"
    if k == "poisson":
        return f"Poisson arrivals at {_rate(process.rate)}"
    if k == "stages":
        peak = max([process.start_rate, *(s.target for s in process.stages)])
        n = len(process.stages)
        total = sum(s.duration for s in process.stages)
        return f"Up to {_rate(peak)} over {n} stage{'s' if n != 1 else ''} ({_dur(total)})"
    if k == "bursts":
        text = f"Bursts of {process.size} every {_dur(process.every)} over {_dur(process.spread)}"
        return text + (f", plus Poisson background at {_rate(process.rate)}" if process.rate > 0 else "")
    if k == "trace":
        n = len(process.points)
        span = max((p.offset for p in process.points), default=0.0)
        return f"Trace replay of {n} request{'s' if n != 1 else ''} over {_dur(span)}"
    return f"Unknown arrival kind {k!r}"
