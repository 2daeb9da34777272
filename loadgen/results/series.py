"""requests.jsonl folded in one pass into the series the plots and the report read.

`RunSeries` takes the attempt dicts (`loadgen.results.directory.load_attempts`) one at a
time and keeps bounded state, so a report costs the same memory at 10k attempts as at
10M: per-minute counters per arm, the rolling-60 s quota peak (a window's worth of
events), cost in at most MAX_COST_BINS time bins per arm, warm/cold counts by gap bin and
a rug of distinct gaps at plot resolution. Figures in tables (peaks, counts) are exact;
only what is drawn is coarsened (cost steps per bin, one rug tick per distinct gap).

Times are scenario seconds; tokens are tokens; money is USD. Conventions follow
summary.json (docs/results-format.md): an attempt counts towards requests per minute in
the minute it was sent and towards tokens per minute in the minute it ended.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from loadgen.results.gap_buckets import PLOT_GAP_EDGES_S, gap_bucket_index

MAX_COST_BINS = 2048     # cost curve points per arm; past it the bins double in width
RUG_STEPS = 1000         # rug positions per decade of gap (the plot draws ~330 pixels a decade)
REORDER_LAG_S = 10.0     # how far behind the latest end an attempt may arrive and still be in order
#                          (one process writes each as it ends: milliseconds; the heap holds this many
#                          seconds of attempts, so it stays short; anything later costs a second pass)


@dataclass(frozen=True)
class MinuteSeries:
    """Per scenario minute (index i covers [60 i, 60 (i + 1)) seconds) for one arm or all."""

    requests: tuple[int, ...]       # attempts sent
    throttled: tuple[int, ...]      # attempts that ended throttled (counted at their start minute)
    tokens: tuple[int, ...]         # quota tokens: input + cache_write + output x burndown
    raw_tokens: tuple[int, ...]     # input + cache_read + cache_write + output (everything billed)


def _minutes(n_seconds: float) -> int:
    return max(1, int(math.floor(n_seconds / 60.0)) + 1)


def quota_tokens(a: Mapping, burndown: float = 1.0) -> int:
    """Tokens an attempt charges against a TPM quota: input + cache writes + output x burndown.

    Cache reads do not count (Bedrock quotas page); burndown is 5 for Claude 4.x
    (loadgen/catalog/data/models.toml `output_burndown`).
    """
    return int(a.get("input_tokens") or 0) + int(a.get("cache_write") or 0) \
        + int(math.ceil((a.get("output_tokens") or 0) * burndown))


def rolling_peak(events: Sequence[tuple[float, float]], window_s: float = 60.0) -> float:
    """Largest sum of `weight` over any `window_s` seconds, from (time_s, weight) events in
    any order (all in memory: for a stream, `RollingPeak`)."""
    q: deque[tuple[float, float]] = deque()
    total = best = 0.0
    for t, w in sorted(events):
        q.append((t, w))
        total += w
        while q[0][0] <= t - window_s:
            total -= q.popleft()[1]
        best = max(best, total)
    return best


class RollingPeak:
    """Largest sum of weights over any window (t - window_s, t], events fed in about time order.

    Events wait in a heap until they are `lag_s` older than the latest one seen, then
    enter the window in time order, so memory holds `lag_s + window_s` seconds of events
    and the answer equals sorting them all first. An event older than one already let in
    is counted in `late` (with how late in `max_late_s`): the value is then not exact, and
    a second pass with `lag_s` above `max_late_s` is (`RunSeries.peaks_exact`).
    """

    def __init__(self, window_s: float = 60.0, lag_s: float = REORDER_LAG_S) -> None:
        self.window_s, self.lag_s = window_s, lag_s
        self._pending: list[tuple[float, float]] = []
        self._window: deque[tuple[float, float]] = deque()
        self._total = self._best = 0.0
        self._latest = self._frontier = -math.inf
        self.late = 0
        self.max_late_s = 0.0

    def add(self, t: float, w: float) -> None:
        if t < self._frontier:
            self.late += 1
            self.max_late_s = max(self.max_late_s, self._latest - t)
        heapq.heappush(self._pending, (t, w))
        if t > self._latest:
            self._latest = t
        edge = self._latest - self.lag_s
        while self._pending and self._pending[0][0] <= edge:
            self._enter(*heapq.heappop(self._pending))

    def _enter(self, t: float, w: float) -> None:
        self._frontier = t
        q = self._window
        q.append((t, w))
        self._total += w
        while q[0][0] <= t - self.window_s:
            self._total -= q.popleft()[1]
        self._best = max(self._best, self._total)

    def value(self) -> float:
        """The peak over every event added so far (the pending ones enter the window now)."""
        while self._pending:
            self._enter(*heapq.heappop(self._pending))
        return self._best


@dataclass
class GapSeries:
    """One arm's ok attempts that read or wrote the cache after an earlier use of its key
    (a `none` state says nothing about TTL): how many, warm/cold per bin of `edges_s`, and
    the distinct (gap, warm?) pairs at RUG_STEPS per decade for the rug."""

    edges_s: Sequence[float]
    n: int = 0
    bins: list[list[int]] = field(default_factory=list)     # per edge: [calls, warm calls]
    rug: set[tuple[int, bool]] = field(default_factory=set)  # (round(RUG_STEPS x log10 gap), warm)

    def add(self, gap_s: float, warm: bool) -> None:
        if not self.bins:
            self.bins = [[0, 0] for _ in self.edges_s]
        self.n += 1
        b = self.bins[gap_bucket_index(gap_s, self.edges_s)]
        b[0] += 1
        b[1] += warm
        self.rug.add((round(RUG_STEPS * math.log10(max(gap_s, 1.0))), warm))

    def warm_ratio_bins(self) -> list[tuple[float, float, int, float]]:
        """(lo_s, hi_s, n, warm ratio) per non-empty bin `lo <= gap < hi`; the last is open."""
        out = []
        for i, (n, w) in enumerate(self.bins):
            if n:
                hi = self.edges_s[i + 1] if i + 1 < len(self.edges_s) else math.inf
                out.append((self.edges_s[i], hi, n, w / n))
        return out

    def rug_points(self) -> list[tuple[float, bool]]:
        """(gap seconds at rug resolution, warm?) once per distinct pair, in gap order."""
        return [(10 ** (q / RUG_STEPS), w) for q, w in sorted(self.rug)]


class CostBins:
    """Cost summed per time bin of `width_s` (1 s at first, doubled whenever there would be
    more than MAX_COST_BINS), so a curve of any length keeps a bounded number of points."""

    def __init__(self) -> None:
        self.width_s = 1.0
        self._bins: dict[int, float] = {}

    def add(self, t: float, usd: float) -> None:
        k = int(t // self.width_s)
        self._bins[k] = self._bins.get(k, 0.0) + usd
        if len(self._bins) > MAX_COST_BINS:
            self.width_s *= 2
            merged: dict[int, float] = {}
            for k, v in sorted(self._bins.items()):
                merged[k // 2] = merged.get(k // 2, 0.0) + v
            self._bins = merged

    def curve(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(bin end times in scenario seconds, running total in USD), in time order."""
        total, ts, ys = 0.0, [], []
        for k in sorted(self._bins):
            total += self._bins[k]
            ts.append((k + 1) * self.width_s)
            ys.append(total)
        return tuple(ts), tuple(ys)


class RunSeries:
    """Attempts folded one at a time (`add`) into bounded per-arm series; "*" is all arms
    together (arms on one model and profile share a quota). `burndown(model_id)` gives the
    output-token quota factor; `gap_edges_s` the bins of the warm-ratio line."""

    def __init__(self, burndown: Callable[[str], float] = lambda model_id: 1.0, *,
                 gap_edges_s: Sequence[float] = PLOT_GAP_EDGES_S, lag_s: float = REORDER_LAG_S) -> None:
        self._burndown = burndown
        self._factors: dict[str, float] = {}
        self._gap_edges = gap_edges_s
        self._lag = lag_s
        self._minutes: dict[str, list[dict[int, int]]] = {}   # key -> 4 columns of minute -> count
        self._end = 0.0
        self.peaks: dict[str, RollingPeak] = {}
        self.costs: dict[str, CostBins] = {}
        self.gaps: dict[str, GapSeries] = {}
        self.attempts = 0

    @classmethod
    def of(cls, attempts: Iterable[Mapping], **kw) -> "RunSeries":
        """Fold every attempt of `attempts` (any iterable, consumed once)."""
        s = cls(**kw)
        for a in attempts:
            s.add(a)
        return s

    def add(self, a: Mapping) -> None:
        self.attempts += 1
        arm = a["arm"]
        mid = a.get("model_id") or ""
        factor = self._factors.get(mid)
        if factor is None:
            factor = self._factors[mid] = self._burndown(mid)
        start = a.get("start") or 0.0
        end = a.get("end") or start
        self._end = max(self._end, end)
        quota = quota_tokens(a, factor)
        raw = sum(int(a.get(k) or 0) for k in ("input_tokens", "cache_read", "cache_write", "output_tokens"))
        i, j = int(start // 60), int(end // 60)
        for key in (arm, "*"):
            cols = self._minutes.get(key)
            if cols is None:
                cols = self._minutes[key] = [{}, {}, {}, {}]
                self.peaks[key] = RollingPeak(lag_s=self._lag)
            cols[0][i] = cols[0].get(i, 0) + 1
            if a.get("status") == "throttled":
                cols[1][i] = cols[1].get(i, 0) + 1
            cols[2][j] = cols[2].get(j, 0) + quota
            cols[3][j] = cols[3].get(j, 0) + raw
            self.peaks[key].add(end, quota)
        costs = self.costs.get(arm)
        if costs is None:
            costs = self.costs[arm] = CostBins()
        costs.add(end, float(a.get("cost_usd") or 0.0))
        gap = a.get("gap_s")
        if a.get("status") == "ok" and gap is not None and a.get("cache_state") in ("warm", "cold"):
            g = self.gaps.get(arm)
            if g is None:
                g = self.gaps[arm] = GapSeries(self._gap_edges)
            g.add(float(gap), a["cache_state"] == "warm")

    # ---- what the plots and tables read -------------------------------------------

    def per_minute(self, span_s: float | None = None) -> dict[str, MinuteSeries]:
        """MinuteSeries per arm and "*"; `span_s`: scenario seconds the run covered (defaults
        to the last attempt's end). A minute past the span counts in the last one."""
        n = _minutes(max(span_s or 0.0, self._end))
        out = {}
        for key, cols in self._minutes.items():
            dense = []
            for col in cols:
                row = [0] * n
                for m, v in col.items():
                    row[min(n - 1, m)] += v
                dense.append(tuple(row))
            out[key] = MinuteSeries(*dense)
        return out

    @property
    def peaks_exact(self) -> bool:
        """False when an attempt came more than the reorder lag out of time order (merged
        parts, batch results booked late): fold again with `lag_s` > `max_late_s`."""
        return not any(p.late for p in self.peaks.values())

    @property
    def max_late_s(self) -> float:
        return max((p.max_late_s for p in self.peaks.values()), default=0.0)

    def peak_quota_tpm(self) -> dict[str, float]:
        """Peak quota tokens in any rolling 60 s (with burndown), per arm and "*" for all."""
        return {k: p.value() for k, p in self.peaks.items()}

    def cumulative_cost(self) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        """Per arm: (bin end times in scenario seconds, running total cost in USD)."""
        return {arm: c.curve() for arm, c in self.costs.items()}


def per_minute(attempts: Iterable[Mapping], *, span_s: float | None = None,
               burndown: Callable[[str], float] = lambda model_id: 1.0) -> dict[str, MinuteSeries]:
    """MinuteSeries per arm, plus "*" for all arms together (`RunSeries.per_minute`)."""
    return RunSeries.of(attempts, burndown=burndown).per_minute(span_s)


def peak_quota_tpm(attempts: Iterable[Mapping], burndown: Callable[[str], float]) -> dict[str, float]:
    """Peak quota tokens in any rolling 60 s (with burndown), per arm and "*" for all; exact
    in any order (the events wait in a heap without a lag bound)."""
    return RunSeries.of(attempts, burndown=burndown, lag_s=math.inf).peak_quota_tpm()


def warm_ratio_bins(points: Sequence[tuple[float, bool]], edges_s: Sequence[float]
                    ) -> list[tuple[float, float, int, float]]:
    """(lo_s, hi_s, n, warm ratio) per non-empty bin `lo <= gap < hi`; the last edge is open
    (summary.json's bucketing rule, here with any edges)."""
    g = GapSeries(edges_s)
    for gap, warm in points:
        g.add(gap, warm)
    return g.warm_ratio_bins()
