"""Arrival processes: when open-loop requests (or agent sessions) start. One small class
per kind, like vegeta's pacers; pure, seeded, no clock.

Each kind owns its parameters, its rules (`problems`: checked when the object is made,
and by the parser, which puts each problem on its key's line), its TOML table (`read`),
its one-line description for plans (`describe`), its offsets and their expected count.
PROCESSES maps the TOML name (`kind = "poisson"`) to the class: adding a process touches
this file only. Callers ask the object (`is_steady`, `replay`, `thinned`), never its name.

All yield offsets t in seconds from run start, non-decreasing, 0 <= t < duration,
lazily, from the `random.Random` passed in:

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

Rates are per second, durations in seconds. The rules are the scenario's: a process
must send something (rates above zero, stages not all zero, bursts of at least one).

Over 400 lines on purpose: all five processes live here so that adding one touches one file.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Iterator, Mapping, Union

from loadgen.scenario.kinds import Checked, Problem, TableReader, build, number_problems, plain
from loadgen.scenario.units import format_duration, format_rate

# Float sums of rates x seconds land a hair off whole numbers (20/m x 60 s =
# 19.999999999999996); snap within this relative tolerance before ceil so the
# count a user computes by hand is the count they get.
_SNAP = 1e-9


@dataclass(frozen=True)
class Stage:
    duration: float    # seconds
    target: float      # rate (per second) reached at the end of the stage, linearly from the previous


@dataclass(frozen=True)
class TracePoint:
    offset: float                      # seconds from run start (after time scaling)
    input_tokens: int | None = None
    output_tokens: int | None = None


def _check_duration(duration: float) -> float:
    for _, message in number_problems({"d": duration}, ("d",), positive=()):
        raise ValueError(f"duration (seconds): {message}")
    return float(duration)


def _ceil(x: float) -> int:
    """ceil(x), but a value within _SNAP of a whole number counts as that number."""
    n = round(x)
    if abs(x - n) <= _SNAP * max(1.0, abs(x)):
        return int(n)
    return math.ceil(x)


def _rate(per_s: float) -> str:
    return format_rate(per_s, plain=True)


def _dur(seconds: float) -> str:
    return format_duration(seconds, coarse=True)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


# --------------------------------------------------------------------------- constant, poisson

@dataclass(frozen=True)
class _OneRate(Checked):
    """What the two one-rate processes share: the rate, its rule, its table, thinning."""

    keys: ClassVar[tuple[str, ...]] = ("rate",)
    is_steady: ClassVar[bool] = True    # one rate throughout: `rate` is the mean rate
    replay: ClassVar[bool] = False      # arrivals are given, not generated
    rate: float

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Any = plain) -> list[Problem]:
        return number_problems(p, cls.keys, positive=cls.keys)

    @classmethod
    def read(cls, r: TableReader) -> Any:
        return build(r, cls, {"rate": r.rate("rate")}, plain)

    def arrivals(self, duration: float, rng: random.Random) -> Iterator[TracePoint]:
        return (TracePoint(t) for t in self.offsets(duration, rng))

    def thinned(self, f: float) -> Any:
        return replace(self, rate=self.rate * f)

    def describe(self) -> str:
        return f"{self.label} arrivals at {_rate(self.rate)}"


@dataclass(frozen=True)
class Constant(_OneRate):
    """Evenly spaced: t_k = k / rate for k = 0 .. ceil(rate * duration) - 1."""

    kind: ClassVar[str] = "constant"
    label: ClassVar[str] = "Constant"

    def offsets(self, duration: float, rng: random.Random) -> Iterator[float]:
        return _constant(self.rate, _check_duration(duration))

    def expected_count(self, duration: float) -> float:
        n = self.rate * _check_duration(duration)
        return n if not math.isfinite(n) else float(_ceil(n))


@dataclass(frozen=True)
class Poisson(_OneRate):
    """Exponential gaps with mean 1 / rate: E[count] = rate x duration."""

    kind: ClassVar[str] = "poisson"
    label: ClassVar[str] = "Poisson"

    def offsets(self, duration: float, rng: random.Random) -> Iterator[float]:
        return _poisson(self.rate, _check_duration(duration), rng)

    def expected_count(self, duration: float) -> float:
        """The mean (inf when rate x duration overflows)."""
        return self.rate * _check_duration(duration)


def _constant(rate: float, duration: float) -> Iterator[float]:
    """t_k = k / rate for k = 0 .. ceil(rate * duration) - 1 (computed, not summed: no drift)."""
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


# --------------------------------------------------------------------------- stages

@dataclass(frozen=True)
class Stages(Checked):
    """A piecewise-linear rate from start_rate through each stage's target (k6's
    ramping-arrival-rate); arrival k where the integral of the rate passes k."""

    kind: ClassVar[str] = "stages"
    keys: ClassVar[tuple[str, ...]] = ("start_rate", "stages")
    is_steady: ClassVar[bool] = False
    replay: ClassVar[bool] = False
    start_rate: float
    stages: tuple[Stage, ...]

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Any = plain) -> list[Problem]:
        out = number_problems(p, ("start_rate",), positive=())
        stages = p["stages"]
        if not isinstance(stages, tuple) or not stages:
            return out + [("stages", "expected at least one stage {duration, target}")]
        for i, s in enumerate(stages):
            out += [(f"stages[{i}].{k}", m) for k, m in
                    number_problems(vars(s), ("duration", "target"), positive=("duration",))]
        if not out and p["start_rate"] == 0 and all(s.target == 0 for s in stages):
            out.append(("stages", "every rate is zero: no request would be sent"))
        return out

    @classmethod
    def read(cls, r: TableReader) -> Any:
        return build(r, cls, {"start_rate": r.rate("start_rate", 0.0, allow_zero=True),
                              "stages": r.stages("stages")}, plain)

    def _segments(self) -> list[tuple[float, float, float, float, float]]:
        """(t0, d, r0, r1, R0) per stage: start time, length (s), rates at ends (/s), R(t0)."""
        out, t0, r0, area = [], 0.0, float(self.start_rate), 0.0
        for s in self.stages:
            r1 = float(s.target)
            out.append((t0, float(s.duration), r0, r1, area))
            area += (r0 + r1) / 2 * s.duration
            t0 += s.duration
            r0 = r1
        return out

    def _integral(self, until: float) -> float:
        """R(until): expected arrivals over [0, until) under the piecewise-linear rate."""
        total = 0.0
        for t0, d, r0, r1, _ in self._segments():
            if until <= t0:
                break
            s = min(d, until - t0)
            if s > 0:
                # trapezoid to the rate at t0 + s; stays finite for subnormal stage lengths
                total += (r0 + (r0 + (r1 - r0) * (s / d))) / 2 * s
        return total

    def _end(self, duration: float) -> float:
        return min(_check_duration(duration), sum(s.duration for s in self.stages))

    def offsets(self, duration: float, rng: random.Random) -> Iterator[float]:
        """k-th arrival at the time R(t) passes k, for k = 0 .. ceil(R(end)) - 1.

        In a segment starting at t0 with rate r0 rising linearly to r1 over d seconds,
        R(t0 + s) = R0 + r0 s + a s^2, a = (r1 - r0) / (2 d). For c = k - R0 the root
        s = 2c / (r0 + sqrt(r0^2 + 4 a c)) is exact, needs no division by a (flat
        segments) and stays finite when r0 = 0 (a ramp from zero). Segment i owns the
        k with R0_i <= k < R0_{i+1}, so zero-rate holds own none.
        """
        end = self._end(duration)
        return self._offsets(end)

    def _offsets(self, end: float) -> Iterator[float]:
        segs = [g for g in self._segments() if g[1] > 0 and (g[2] > 0 or g[3] > 0)]
        n = _ceil(self._integral(end))
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

    def arrivals(self, duration: float, rng: random.Random) -> Iterator[TracePoint]:
        return (TracePoint(t) for t in self.offsets(duration, rng))

    def expected_count(self, duration: float) -> float:
        return float(_ceil(self._integral(self._end(duration))))

    def thinned(self, f: float) -> Stages:
        return replace(self, start_rate=self.start_rate * f,
                       stages=tuple(replace(st, target=st.target * f) for st in self.stages))

    def describe(self) -> str:
        peak = max([self.start_rate, *(s.target for s in self.stages)])
        total = sum(s.duration for s in self.stages)
        return f"Up to {_rate(peak)} over {_plural(len(self.stages), 'stage')} ({_dur(total)})"


# --------------------------------------------------------------------------- bursts, trace

@dataclass(frozen=True)
class Bursts(Checked):
    """`size` arrivals uniform over `spread` seconds every `every` seconds, plus a
    background Poisson process at `rate` (0: none)."""

    kind: ClassVar[str] = "bursts"
    keys: ClassVar[tuple[str, ...]] = ("every", "size", "spread", "rate")
    is_steady: ClassVar[bool] = False
    replay: ClassVar[bool] = False
    every: float
    size: int
    spread: float = 0.0
    rate: float = 0.0

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Any = plain) -> list[Problem]:
        out = number_problems(p, ("every", "spread", "rate"), positive=("every",))
        size = p["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            out.append(("size", f"expected a whole number >= 1, got {size!r}"))
        return out

    @classmethod
    def read(cls, r: TableReader) -> Any:
        return build(r, cls, {"every": r.duration("every"), "size": r.count("size", minimum=1),
                              "spread": r.duration("spread", 0.0, allow_zero=True),
                              "rate": r.rate("rate", 0.0, allow_zero=True)}, plain)

    def offsets(self, duration: float, rng: random.Random) -> Iterator[float]:
        """Bursts may overlap (spread > every), so pending arrivals wait in a heap and leave
        once the next burst's start passes them: everything later comes after that start.
        The background draws from its own generator, seeded from `rng` up front, so burst
        positions do not depend on how the two streams interleave.
        """
        duration = _check_duration(duration)
        background = _poisson(self.rate, duration, random.Random(rng.getrandbits(64)))

        def burst_stream() -> Iterator[float]:
            pending: list[float] = []
            j = 0
            while True:
                start = j * self.every
                if start >= duration:
                    break
                for _ in range(self.size):
                    t = start + self.spread * rng.random()
                    if t < duration:
                        heapq.heappush(pending, t)
                j += 1
                nxt = j * self.every
                while pending and pending[0] < nxt:
                    yield heapq.heappop(pending)
            while pending:
                yield heapq.heappop(pending)

        return heapq.merge(burst_stream(), background)

    def arrivals(self, duration: float, rng: random.Random) -> Iterator[TracePoint]:
        return (TracePoint(t) for t in self.offsets(duration, rng))

    def expected_count(self, duration: float) -> float:
        """The mean: whole bursts, the share of a burst cut by the end, plus the
        background's rate x duration."""
        duration = _check_duration(duration)
        every, spread = self.every, self.spread
        total = self.rate * duration
        n = math.ceil(duration / every)       # bursts start at j * every < duration
        while n > 0 and (n - 1) * every >= duration:
            n -= 1
        while n * every < duration:
            n += 1
        # bursts before `whole` end inside the run; later ones lose the share past the end
        whole = min(n, max(0, math.floor((duration - spread) / every) + 1))
        total += self.size * whole
        # the rest (j = whole .. n-1) lose the share past the end: each keeps
        # (duration - j * every) / spread, summed in closed form (an arithmetic series;
        # a loop here ran for hours when spread spans billions of bursts)
        cut = n - whole
        if cut > 0:
            total += self.size * (cut * duration - every * (whole + n - 1) * cut / 2) / spread
        return total

    def thinned(self, f: float) -> Bursts:
        """Bursts keep their size and come 1/f times as rarely."""
        return replace(self, rate=self.rate * f, every=self.every / f)

    def describe(self) -> str:
        text = f"Bursts of {self.size} every {_dur(self.every)} over {_dur(self.spread)}"
        return text + (f", plus Poisson background at {_rate(self.rate)}" if self.rate > 0 else "")


@dataclass(frozen=True)
class Trace(Checked):
    """Replay of recorded requests: each point's offset, with its token counts if given."""

    kind: ClassVar[str] = "trace"
    keys: ClassVar[tuple[str, ...]] = ("file", "time_scale")
    is_steady: ClassVar[bool] = False
    replay: ClassVar[bool] = True
    points: tuple[TracePoint, ...]

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Any = plain) -> list[Problem]:
        points = p["points"]
        if not isinstance(points, tuple) or not points:
            return [("file", "a trace needs at least one request")]
        return [(f"points[{i}].offset", m) for i, pt in enumerate(points)
                for _, m in number_problems(vars(pt), ("offset",), positive=())]

    @classmethod
    def read(cls, r: TableReader) -> Any:
        """Offsets in the file are divided by time_scale (2 replays twice as fast)."""
        scale = r.number("time_scale", 1.0, low=0, low_open=True)
        return build(r, cls, {"points": r.trace("file", scale)}, plain)

    def arrivals(self, duration: float, rng: random.Random) -> Iterator[TracePoint]:
        """The points in offset order (a stable sort: equal offsets keep file order), < duration."""
        duration = _check_duration(duration)
        points = self.points
        if any(points[i].offset > points[i + 1].offset for i in range(len(points) - 1)):
            points = tuple(sorted(points, key=lambda p: p.offset))
        return (p for p in points if p.offset < duration)

    def offsets(self, duration: float, rng: random.Random) -> Iterator[float]:
        return (p.offset for p in self.arrivals(duration, rng))

    def expected_count(self, duration: float) -> float:
        duration = _check_duration(duration)
        return float(sum(1 for p in self.points if p.offset < duration))

    def thinned(self, f: float) -> Trace:
        """As is: its points are already in memory."""
        return self

    def describe(self) -> str:
        span = max((p.offset for p in self.points), default=0.0)
        return f"Trace replay of {_plural(len(self.points), 'request')} over {_dur(span)}"


# Any arrival process. Each offers: offsets(duration, rng) and arrivals(duration, rng)
# (lazy, seconds from run start, in [0, duration)); expected_count(duration); thinned(f),
# the same shape with a share f of the arrivals; describe(); is_steady; replay.
Process = Union[Constant, Poisson, Stages, Bursts, Trace]

# The TOML name of each process (`kind = "..."`) -> its class.
PROCESSES: dict[str, Any] = {c.kind: c for c in (Constant, Poisson, Stages, Bursts, Trace)}
