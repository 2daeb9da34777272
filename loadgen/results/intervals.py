"""Per-interval figures: attempts cut into fixed intervals of scenario time and handed to
sinks (HDR interval logs, the `--output jsonl` stream, CloudWatch) as each interval closes.

One aggregator feeds every sink, so the stream, the interval logs and the CloudWatch
datums of a run are the same figures. An attempt belongs to the interval its `end` falls
in (when it completed and Bedrock billed it): interval k covers scenario seconds
[k * interval_s, (k + 1) * interval_s). Each interval holds one `Metrics` per arm that had
attempts in it (created on the first one), so its figures follow exactly the rules of
the whole-run summary (latency from the intended start, failures timed, ok-only and
all-attempt histograms) and merge exactly: interval k of two workers adds into interval
k of the run (`Interval.merge`), and the intervals of a run add up to its whole-run
histograms and counts.

Closing: `close_until(now)` closes every interval that ended `grace_s` or more before
`now` (the caller's ticker, on the run's clock); `record` also closes intervals more
than one behind the attempt it is given, so a run without a ticker (virtual time)
holds at most two open (unless `close_on_record` is off: a split run's parent reads
its workers' attempts part after part, seconds late, so only its ticker may close).
An attempt whose interval was already closed (it completed just before a tick but
reached the sink after it) goes into the oldest open interval and is counted there as
`late`, so no attempt is lost from the totals.

The whole-run figures come from the same records: given `whole` (the run's Metrics),
the aggregator merges each interval's Metrics into it as the interval closes, so an
attempt is recorded once, not once for the run and again for its interval (histograms
and counts add exactly; the cost sums, which are floats, are summed attempt by attempt
into `whole` in `record`, so they round as they always did). Until the run's intervals
are all closed, `whole` lacks the open ones: the live status line reads `LiveTotals`,
which adds them in. A batch arm's attempts (one per batch record, few) go to `whole` as
they come, as its batch figures hold order-dependent sums of their own.

Pure: no clock, no I/O; `wall` (Unix seconds at close, for CloudWatch timestamps) is
passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from loadgen.engine.record import Attempt
from loadgen.results.histograms import new_histogram, quick_summary
from loadgen.results.metrics import ArmInfo, Metrics

ROW_LATENCIES = ("ttft", "e2e", "ttft_all", "e2e_all", "schedule_lag")
ROW_STATS = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0))
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")


@dataclass
class ArmInterval:
    """One arm's figures in one interval: its Metrics (histograms and status counts), and
    beside them what a row and a CloudWatch datum need cheaply: retries, tokens by kind
    (TOKEN_KINDS), the min and max of a single attempt's cost (USD) and late attempts."""

    metrics: Metrics
    retries: int = 0
    tokens: list = field(default_factory=lambda: [0, 0, 0, 0])
    cost_min: float = float("inf")
    cost_max: float = 0.0
    late: int = 0

    def merge(self, other: "ArmInterval") -> None:
        self.metrics.merge(other.metrics)
        self.retries += other.retries
        self.tokens = [x + y for x, y in zip(self.tokens, other.tokens)]
        self.cost_min = min(self.cost_min, other.cost_min)
        self.cost_max = max(self.cost_max, other.cost_max)
        self.late += other.late

    def counts(self, arm: str) -> Any:
        """sent, ok, throttled, error, timeout, warm, cold and cost_usd (a live.ArmSnapshot)."""
        return self.metrics.snapshot().arm(arm)


@dataclass
class Interval:
    """Interval `index`: scenario seconds [start_s, end_s); `arms` holds only the arms that
    had attempts in it; `wall` is the Unix time it was closed (None if not given)."""

    index: int
    start_s: float
    end_s: float
    arms: dict[str, ArmInterval] = field(default_factory=dict)
    wall: float | None = None

    def merge(self, other: "Interval") -> "Interval":
        """Add `other` (the same interval from another worker) into this one; returns self."""
        if other.index != self.index:
            raise ValueError(f"cannot merge interval {other.index} into interval {self.index}")
        for name, o in other.arms.items():
            mine = self.arms.get(name)
            if mine is None:
                mine = self.arms[name] = ArmInterval(Metrics([]))
            mine.merge(o)
        if other.wall is not None and (self.wall is None or other.wall > self.wall):
            self.wall = other.wall
        return self

    def row(self, arm: str) -> dict:
        """The `--output jsonl` line of `arm` in this interval (docs/results-format.md):
        counts, tokens, cost and latency percentiles (ms) of the attempts that ended in it."""
        d: dict[str, Any] = {"interval": self.index, "start_s": round(self.start_s, 6),
                             "end_s": round(self.end_s, 6), "arm": arm}
        if self.wall is not None:
            d["wall"] = round(self.wall, 3)
        ai = self.arms.get(arm)
        if ai is None:
            d.update(requests=dict.fromkeys(("sent", "ok", "throttled", "error", "timeout", "retries"), 0),
                     failed=0, tokens=dict.fromkeys(TOKEN_KINDS, 0), cost_usd=0.0,
                     cache={"warm": 0, "cold": 0},
                     latency_ms={m: quick_summary(_EMPTY, ROW_STATS) for m in ROW_LATENCIES}, late=0)
            return d
        c = ai.counts(arm)
        d["requests"] = {"sent": c.sent, "ok": c.ok, "throttled": c.throttled, "error": c.error,
                         "timeout": c.timeout, "retries": ai.retries}
        d["failed"] = c.sent - c.ok
        d["tokens"] = dict(zip(TOKEN_KINDS, ai.tokens))
        d["cost_usd"] = round(c.cost_usd, 9)
        d["cache"] = {"warm": c.warm, "cold": c.cold}
        d["latency_ms"] = {m: quick_summary(ai.metrics.histogram(arm, m), ROW_STATS) for m in ROW_LATENCIES}
        d["late"] = ai.late
        return d


_EMPTY = new_histogram()


class IntervalSink(Protocol):
    """What the aggregator feeds: every interval in order as it closes, then `close()`."""

    def on_interval(self, iv: Interval) -> None: ...

    def close(self) -> None: ...


class IntervalAggregator:
    """Attempts -> fixed intervals of `interval_s` scenario seconds -> `sinks`."""

    def __init__(self, arms: Sequence[ArmInfo], interval_s: float, sinks: Sequence[IntervalSink] = (),
                 *, grace_s: float | None = None, whole: Metrics | None = None,
                 close_on_record: bool = True) -> None:
        """`whole`: the run's Metrics, built from the intervals as they close (module doc).
        `close_on_record`: whether an attempt closes intervals more than one behind its own."""
        if not interval_s > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval_s}")
        self.infos = {a.name: a for a in arms}
        self.interval_s = float(interval_s)
        # an attempt's end is read a few event-loop steps before the sink sees it
        self.grace_s = min(1.0, self.interval_s / 10) if grace_s is None else grace_s
        self.sinks = list(sinks)
        self.whole = whole
        self.close_on_record = close_on_record
        self._batch = {a.name for a in arms if a.mode == "batch"}
        self._open: dict[int, Interval] = {}
        self.next_index = 0          # the first interval not closed yet
        self.late = 0                # attempts recorded into a later interval than their end's
        self.closed = 0              # intervals handed to the sinks

    def record(self, a: Attempt, costs: Any = None) -> None:
        """Fold one completed attempt into its interval (hot path)."""
        k = int(round(a.end, 6) // self.interval_s)
        late = k < self.next_index
        if late:
            k = self.next_index
            self.late += 1
        elif k > self.next_index + 1 and self.close_on_record:
            self._close_before(k - 1, None)
        iv = self._open.get(k)
        if iv is None:
            iv = self._open[k] = Interval(k, k * self.interval_s, (k + 1) * self.interval_s)
        ai = iv.arms.get(a.arm)
        if ai is None:
            info = self.infos.get(a.arm)
            if info is None:
                raise ValueError(f"attempt for unknown arm {a.arm!r}; expected one of {', '.join(self.infos)}")
            ai = iv.arms[a.arm] = ArmInterval(Metrics([info]))
        ai.metrics.record(a, buckets=costs)
        whole = self.whole
        if whole is not None:
            if a.arm in self._batch:
                whole.record(a, buckets=costs)
            else:
                whole.record_sums(a, buckets=costs)
        c = round(a.cost_usd, 9)
        if c < ai.cost_min:
            ai.cost_min = c
        if c > ai.cost_max:
            ai.cost_max = c
        if late:
            ai.late += 1
        if a.attempt > 1:
            ai.retries += 1
        tok = ai.tokens
        tok[0] += a.input_tokens
        tok[1] += a.output_tokens
        tok[2] += a.cache_read
        tok[3] += a.cache_write

    def close_until(self, now: float, wall: float | None = None) -> int:
        """Close every interval that ended at least `grace_s` before scenario second `now`;
        how many were closed. `wall`: Unix seconds, stamped on the closed intervals."""
        return self._close_before(int((now - self.grace_s) // self.interval_s), wall)

    def close_all(self, now: float, wall: float | None = None) -> int:
        """The run is over: close every interval up to the one holding scenario second
        `now` (and any later one an attempt landed in), then close the sinks."""
        last = max([int(now // self.interval_s) + (1 if now % self.interval_s or now == 0 else 0),
                    *(k + 1 for k in self._open)])
        n = self._close_before(last, wall)
        for s in self.sinks:
            s.close()
        return n

    def _close_before(self, k_end: int, wall: float | None) -> int:
        n = 0
        while self.next_index < k_end:
            k = self.next_index
            iv = self._open.pop(k, None) or Interval(k, k * self.interval_s, (k + 1) * self.interval_s)
            iv.wall = wall
            self.next_index = k + 1
            for s in self.sinks:
                s.on_interval(iv)
            if self.whole is not None:
                for name, ai in iv.arms.items():
                    if name not in self._batch:
                        self.whole.merge(ai.metrics, sums=False)
            n += 1
        self.closed += n
        return n


class LiveTotals:
    """The whole run's counts and recent rates while it goes, for the live status line
    (`snapshot`, `recent`: what it reads of a Metrics): the aggregator's `whole` plus the
    intervals still open."""

    def __init__(self, aggregator: IntervalAggregator) -> None:
        if aggregator.whole is None:
            raise ValueError("LiveTotals needs an aggregator that builds the whole-run Metrics")
        self.aggregator = aggregator

    def _open(self) -> list[Metrics]:
        ag = self.aggregator
        return [ai.metrics for iv in ag._open.values() for name, ai in iv.arms.items() if name not in ag._batch]

    def snapshot(self) -> Any:
        return self.aggregator.whole.snapshot(plus=self._open())  # type: ignore[union-attr]

    def recent(self, now: float, window: float = 60.0, arm: str | None = None) -> Any:
        return self.aggregator.whole.recent(now, window, arm, plus=self._open())  # type: ignore[union-attr]
