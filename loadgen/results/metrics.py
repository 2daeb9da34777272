"""Metrics: fold Attempts into per-arm histograms, counters and per-second buckets.

`Metrics.record(attempt, buckets)` folds one completed HTTP attempt in (hot path:
counters and `histograms.record_us` only, no percentiles). A run's sink
(`loadgen.api.session.RunState.sink`) records each attempt into its interval's Metrics
(`loadgen.results.intervals`), and the whole-run Metrics is built by merging each
interval in as it closes (`merge(..., sums=False)`) plus `record_sums` per attempt, so
the float cost sums are added in the same order as direct recording would add them.
The live display reads `snapshot()` and `recent()` (`loadgen.results.live`); at the end
`summary(run_facts)` builds the summary.json dict (keys are a contract, see DESIGN.md
and docs/results-format.md). The pieces it folds
into live beside it: `histograms` (settings, metric names, latency summaries),
`per_second` (the per-second buckets and their peaks), `gap_buckets`.

Every figure is mergeable (`merge`), so a run split over worker processes sums to
the same summary as one process: counters add, histograms `add()` exactly because
every histogram in loadgen is built by `new_histogram()` with the same settings.

Latencies are computed in `record` from the Attempt's times: ttft and e2e from the
*intended* start (no coordinated omission), service from the actual send, schedule
lag = start - intended. Every attempt is timed, as vegeta and k6 do: ttft_all,
e2e_all and service_all hold every attempt, a failed one at the time it failed (a
timeout at its deadline, which the transport sets as `end`; an attempt that failed
before its first token has its failure time as ttft: the wait for a token that never
came). ttft/e2e/service keep ok attempts only (summary.json keys older than the
all-attempt ones; each latency summary carries `failed` beside `count`, so the
attempts they leave out are never out of sight). schedule_lag holds first attempts
only (a retry keeps its request's intended start; its backoff is in e2e, not lag).

Times are rounded to the microsecond before use, as requests.jsonl stores them, so a
summary rebuilt from requests.jsonl (`loadgen.results.rebuild`) has exactly the same figures.

(Over 400 lines: `record`, `merge` and the summary read and write the same per-arm
accumulators, and a batch arm's share of them, in one place.)
"""

from __future__ import annotations

from bisect import bisect_right
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from hdrh.histogram import HdrHistogram

from loadgen.engine.expectations import likely_cause
from loadgen.engine.record import CACHE_STATES, STATUSES, Attempt
from loadgen.results import histograms
from loadgen.results.batch_figures import BatchFigures
from loadgen.results.gap_buckets import GAP_EDGES_S, gap_bucket_rows
from loadgen.results.histograms import (
    HIST_HIGHEST_US, LATENCY_METRICS, latency_summary, new_histogram, record_us, record_us_twice,
)
from loadgen.results.live import ArmSnapshot, Rate, Snapshot
from loadgen.results.per_second import (
    COLUMNS, CREAD, CWRITE, ERROR, IN, NCOLS, OK, OUT, SENT, STATUS_COL, THROTTLED, TIMEOUT,
    add_seconds, merge_seconds, peaks, window_totals,
)

COST_BUCKETS = ("input", "output", "cache_read", "cache_write")
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_5m", "cache_write_1h")


@dataclass(frozen=True)
class ArmInfo:
    """What metrics need to know about an arm (from scenario.Arm)."""

    name: str
    model_id: str
    profile: str        # region | geo | global
    cache_ttl: str      # "5m" | "1h"
    cache: bool = True  # whether the arm places cachePoints at all
    service_tier: str = "default"   # Converse serviceTier the arm sends ("default" when unset)
    mode: str = "on_demand"         # "on_demand" | "batch" (scenario [[arms]] mode)

    @classmethod
    def from_arm(cls, arm) -> "ArmInfo":
        """Build from a `loadgen.scenario.Arm` (duck-typed: name, model_id, profile, cache_ttl, cache,
        service_tier)."""
        return cls(arm.name, arm.model_id, arm.profile, arm.cache_ttl, bool(getattr(arm, "cache", True)),
                   getattr(arm, "service_tier", None) or "default", getattr(arm, "mode", "on_demand"))


class _Arm:
    """Mutable per-arm accumulators (internal; use Metrics)."""

    __slots__ = (
        "info", "ttft", "e2e", "service", "schedule_lag", "ttft_all", "e2e_all", "service_all",
        "status", "errors", "retries", "first_failed",
        "cache", "mismatch", "tokens", "cost_total", "cost", "gaps", "seconds", "clamped",
        "partial", "batch", "last_ok",
    )

    def __init__(self, info: ArmInfo) -> None:
        self.info = info
        self.ttft = new_histogram()
        self.e2e = new_histogram()
        self.service = new_histogram()
        self.schedule_lag = new_histogram()
        self.ttft_all = new_histogram()
        self.e2e_all = new_histogram()
        self.service_all = new_histogram()
        self.status = dict.fromkeys(STATUSES, 0)
        self.errors: dict[str, int] = {}
        self.retries = 0
        self.first_failed = 0  # first attempts that failed (they are in schedule_lag)
        self.cache = dict.fromkeys(CACHE_STATES, 0)
        self.mismatch: dict[tuple[str, str], int] = {}
        self.tokens = [0] * len(TOKEN_FIELDS)  # in TOKEN_FIELDS order (a list: hot path)
        self.cost_total = 0.0
        self.cost = dict.fromkeys(COST_BUCKETS, 0.0)
        # gaps[i] = {"warm": n, "cold": n, "none": n} for ok attempts whose gap_s fell in bucket i
        self.gaps = [dict.fromkeys(CACHE_STATES, 0) for _ in GAP_EDGES_S]
        self.seconds: dict[int, list[int]] = {}
        self.clamped = 0  # attempts' latency values outside 0..24 h, recorded at the edge
        # cache races (not mismatches) and failed attempts billed on estimated usage (record.py)
        self.partial = {"cache_race": 0, "usage_estimated": 0, "cost_estimated": 0.0}
        self.batch = BatchFigures() if info.mode == "batch" else None
        self.last_ok: float | None = None  # scenario s: the latest end of an ok attempt

    def hist(self, metric: str) -> HdrHistogram:
        return getattr(self, metric)


class Metrics:
    """Per-arm histograms, counters and per-second buckets for one run (or one worker)."""

    def __init__(self, arms: Sequence[ArmInfo]) -> None:
        self._arms: dict[str, _Arm] = {}
        for info in arms:
            if info.name in self._arms:
                raise ValueError(f"duplicate arm name {info.name!r}: arm names must be unique")
            self._arms[info.name] = _Arm(info)

    @property
    def arm_names(self) -> tuple[str, ...]:
        return tuple(self._arms)

    def histogram(self, arm: str, metric: str) -> HdrHistogram:
        """The live histogram (microseconds) of `metric` in LATENCY_METRICS for `arm`."""
        if metric not in LATENCY_METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(LATENCY_METRICS)}")
        return self._arms[arm].hist(metric)

    # ---- hot path -------------------------------------------------------------

    def record(self, a: Attempt, buckets: Mapping[str, float] | Any = None) -> None:
        """Fold one completed attempt in.

        `buckets`: the attempt's cost split in USD by COST_BUCKETS, a dict or the
        `loadgen.catalog.pricing.Breakdown` that pricing.breakdown returns; other keys are
        ignored. The total always comes from `a.cost_usd`.
        """
        s = self._arm_of(a)
        status = a.status
        try:
            s.status[status] += 1
        except KeyError:
            raise ValueError(f"attempt status {status!r}; expected one of {', '.join(STATUSES)}") from None
        if a.attempt > 1:
            s.retries += 1

        # Rounded to the microsecond as requests.jsonl stores them (round() is idempotent),
        # so figures rebuilt from the file are exactly the ones written at the end of the run.
        intended, start, end = round(a.intended, 6), round(a.start, 6), round(a.end, 6)
        ok = status == "ok"
        # Schedule lag is the generator's lateness, so only first attempts count: a retry
        # keeps the request's intended start, and its earlier attempts and backoff are
        # the target's doing (they are in the retry's e2e latency instead).
        # Microseconds, rounded; values outside the histogram range are pinned to its
        # edge and counted (`latency_clamped`) rather than silently dropped.
        if a.attempt == 1:
            lag = int((start - intended) * 1e6 + 0.5)
            if not 0 <= lag <= HIST_HIGHEST_US:
                lag = min(max(lag, 0), HIST_HIGHEST_US)
                s.clamped += 1
            record_us(s.schedule_lag, lag)
            if not ok:
                s.first_failed += 1

        # `sent` lands in the second the attempt was sent; its outcome and tokens in
        # the second it ended (when Bedrock charges the tokens).
        sec = s.seconds
        k = int(start)
        row = sec.get(k)
        if row is None:
            row = sec[k] = [0] * NCOLS
        row[SENT] += 1
        k = int(end)
        row = sec.get(k)
        if row is None:
            row = sec[k] = [0] * NCOLS
        row[STATUS_COL[status]] += 1

        # Every attempt is timed (failures too: a timeout at its deadline, which is `end`),
        # so no percentile over *_all can let a failure vanish.
        e2e = int((end - intended) * 1e6 + 0.5)
        svc = int((end - start) * 1e6 + 0.5)
        if not (0 <= e2e <= HIST_HIGHEST_US and 0 <= svc <= HIST_HIGHEST_US):
            e2e = min(max(e2e, 0), HIST_HIGHEST_US)
            svc = min(max(svc, 0), HIST_HIGHEST_US)
            s.clamped += 1
        if ok:  # the same values into the ok-only histograms
            record_us_twice(s.e2e_all, s.e2e, e2e)
            record_us_twice(s.service_all, s.service, svc)
        else:
            record_us(s.e2e_all, e2e)
            record_us(s.service_all, svc)
        ft = a.first_token
        if a.batch_status is not None:
            # a batch record: no first token to wait for; its times go to the batch figures
            (s.batch if s.batch is not None else _batch_of(s)).record(a)
        elif ft is not None or not ok:
            # a failure before any token: the client waited until it failed for a first
            # token that never came, so that wait is its time to first token
            t = int(((round(ft, 6) if ft is not None else end) - intended) * 1e6 + 0.5)
            if not 0 <= t <= HIST_HIGHEST_US:
                t = min(max(t, 0), HIST_HIGHEST_US)
                s.clamped += 1
            if ok:
                record_us_twice(s.ttft_all, s.ttft, t)
            else:
                record_us(s.ttft_all, t)

        if ok:
            if s.last_ok is None or end > s.last_ok:
                s.last_ok = end
            obs = a.cache_state
            s.cache[obs] += 1
            pred = a.cache_predicted
            if a.cache_race:
                s.partial["cache_race"] += 1
            if pred != obs and not (a.cache_race and obs == "warm"):
                pair = (pred, obs)
                s.mismatch[pair] = s.mismatch.get(pair, 0) + 1
            gap = a.gap_s
            if gap is not None:
                s.gaps[max(0, bisect_right(GAP_EDGES_S, gap) - 1)][obs] += 1
        else:
            # A timeout may have no service error code; count it under its status.
            code = a.error_code or status
            s.errors[code] = s.errors.get(code, 0) + 1

        inp, out, cr, cw = a.input_tokens, a.output_tokens, a.cache_read, a.cache_write
        tok = s.tokens
        tok[0] += inp
        tok[1] += out
        tok[2] += cr
        tok[3] += cw
        tok[4] += a.cache_write_5m
        tok[5] += a.cache_write_1h
        row[IN] += inp
        row[OUT] += out
        row[CREAD] += cr
        row[CWRITE] += cw

        if a.usage_estimated:
            s.partial["usage_estimated"] += 1
        _add_sums(s, a, buckets)

    def _arm_of(self, a: Attempt) -> Any:
        try:
            return self._arms[a.arm]
        except KeyError:
            raise ValueError(f"attempt for unknown arm {a.arm!r}; expected one of {', '.join(self._arms)}") from None

    def record_sums(self, a: Attempt, buckets: Mapping[str, float] | Any = None) -> None:
        """Only the cost sums of `record` (USD floats: the total, by bucket, estimated).

        For a whole-run Metrics built from interval Metrics (`merge(..., sums=False)`):
        counts and histograms add exactly in any order, but a float sum rounds at every
        addition, so the cost figures are summed here, attempt by attempt in the order
        `record` would see them, and summary.json stays byte for byte what it was."""
        s = self._arm_of(a)
        _add_sums(s, a, buckets)

    # ---- live views -------------------------------------------------------------

    def snapshot(self, plus: Sequence["Metrics"] = ()) -> Snapshot:
        """Per-arm and total counts so far (O(arms), no percentiles).

        `plus`: Metrics whose counts are added in (a whole-run Metrics built from interval
        Metrics adds the intervals not merged yet); not their cost sums, which such a
        Metrics already holds for every attempt (`record_sums`)."""
        arms = []
        for name, s in self._arms.items():
            c = _live_counts(s)
            for m in plus:
                o = m._arms.get(name)
                if o is not None:
                    c = [x + y for x, y in zip(c, _live_counts(o))]
            arms.append(ArmSnapshot(name, *c, s.cost_total))
        total = ArmSnapshot(
            "total", *(sum(getattr(a, f) for a in arms)
                       for f in ("sent", "ok", "throttled", "error", "timeout", "warm", "cold", "cost_usd"))
        )
        return Snapshot(tuple(arms), total)

    def recent(self, now: float, window: float = 60.0, arm: str | None = None,
               plus: Sequence["Metrics"] = ()) -> Rate:
        """Rates over scenario seconds (now - window, now], per minute; all arms unless `arm`.
        `plus`: Metrics whose per-second buckets are added in (see `snapshot`)."""
        if window <= 0:
            raise ValueError(f"window must be > 0 seconds, got {window}")
        hi = int(now)
        lo = int(math.floor(now - window)) + 1
        states = [self._arms[arm]] if arm is not None else list(self._arms.values())
        for m in plus:
            states.extend(s for name, s in m._arms.items() if arm is None or name == arm)
        tot = window_totals((st.seconds for st in states), lo, hi)
        f = 60.0 / window
        return Rate(
            window_s=window,
            rpm=tot[SENT] * f,
            tpm=(tot[IN] + tot[CWRITE] + tot[OUT]) * f,
            ok_pm=tot[OK] * f,
            throttled_pm=tot[THROTTLED] * f,
            errors_pm=(tot[ERROR] + tot[TIMEOUT]) * f,
        )

    def per_second(self, arm: str | None = None) -> dict[int, dict[str, int]]:
        """Per-second buckets of scenario time, sorted by second (for plots).

        `sent` is counted in the second the attempt was sent; outcomes and tokens
        in the second it ended.
        """
        merged = merge_seconds(s.seconds for s in ([self._arms[arm]] if arm else self._arms.values()))
        return {k: dict(zip(COLUMNS, merged[k])) for k in sorted(merged)}

    def span_s(self) -> float:
        """Scenario seconds covered by recorded attempts: up to the end of the last
        non-empty one-second bucket (0.0 when nothing was recorded)."""
        last = max((max(s.seconds) for s in self._arms.values() if s.seconds), default=-1)
        return float(last + 1)

    # ---- merging ----------------------------------------------------------------

    def merge(self, other: "Metrics", *, sums: bool = True) -> "Metrics":
        """Add `other`'s figures into this one (in place; returns self).

        Arms are matched by name; an arm only `other` has is added. The same arm
        name with different ArmInfo is an error (the parts come from different runs).
        `sums=False` leaves the cost sums (USD floats) out: this Metrics gets them from
        `record_sums` (see there). Batch figures are always added.
        """
        for name, o in other._arms.items():
            s = self._arms.get(name)
            if s is None:
                s = self._arms[name] = _Arm(o.info)
            elif s.info != o.info:
                raise ValueError(f"cannot merge arm {name!r}: {s.info} differs from {o.info}")
            for m in LATENCY_METRICS:
                s.hist(m).add(o.hist(m))
            _add_counts(s.status, o.status)
            _add_counts(s.errors, o.errors)
            _add_counts(s.cache, o.cache)
            _add_counts(s.mismatch, o.mismatch)
            s.partial["cache_race"] += o.partial["cache_race"]
            s.partial["usage_estimated"] += o.partial["usage_estimated"]
            s.tokens = [x + y for x, y in zip(s.tokens, o.tokens)]
            if sums:
                s.partial["cost_estimated"] += o.partial["cost_estimated"]
                _add_counts(s.cost, o.cost)
                s.cost_total += o.cost_total
            for sg, og in zip(s.gaps, o.gaps):
                _add_counts(sg, og)
            add_seconds(s.seconds, o.seconds)
            s.retries += o.retries
            s.first_failed += o.first_failed
            s.clamped += o.clamped
            if o.batch is not None:
                _batch_of(s).merge(o.batch)
            if o.last_ok is not None and (s.last_ok is None or o.last_ok > s.last_ok):
                s.last_ok = o.last_ok
        return self

    # ---- summary ----------------------------------------------------------------

    def summary(self, run_facts: Mapping[str, object]) -> dict:
        """The summary.json dict: `run_facts` at top level, then histogram settings,
        run-wide rpm/tpm peaks and `arms` (see docs/results-format.md)."""
        out: dict = dict(run_facts)
        out["histograms"] = histograms.settings()
        all_secs = merge_seconds(s.seconds for s in self._arms.values())
        out["rpm_peak"], out["tpm_peak"] = peaks(all_secs)
        out["arms"] = {name: _arm_summary(s) for name, s in self._arms.items()}
        if any(s.batch is not None for s in self._arms.values()):
            # beside a batch arm, every arm says when its last result came (compare's "time to
            # last result"); runs without one keep their summary.json as it was
            for name, s in self._arms.items():
                out["arms"][name]["last_result_s"] = s.last_ok
        return out


def _live_counts(s: _Arm) -> list[int]:
    """sent, ok, throttled, error, timeout, warm, cold: an ArmSnapshot's counts."""
    st, cache = s.status, s.cache
    return [sum(st.values()), st["ok"], st["throttled"], st["error"], st["timeout"], cache["warm"], cache["cold"]]


def _add_sums(s: _Arm, a: Attempt, buckets: Mapping[str, float] | Any) -> None:
    cost = round(a.cost_usd, 9)  # as requests.jsonl stores it: the summary is the file's sum
    s.cost_total += cost
    if a.usage_estimated:
        s.partial["cost_estimated"] += cost
    if buckets:
        c = s.cost
        if not hasattr(buckets, "items"):
            buckets = buckets.__dict__  # a loadgen.catalog.pricing.Breakdown (a frozen dataclass)
        for name, usd in buckets.items():
            if name in c:
                c[name] += usd


def _batch_of(s: _Arm) -> "BatchFigures":
    if s.batch is None:
        s.batch = BatchFigures()
    return s.batch


def _add_counts(into: dict, other: Mapping) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def _arm_summary(s: _Arm) -> dict:
    st = s.status
    sent = sum(st.values())
    ok = st["ok"]
    warm, cold = s.cache["warm"], s.cache["cold"]
    rpm_peak, tpm_peak = peaks(s.seconds)
    return {
        "model_id": s.info.model_id,
        "profile": s.info.profile,
        "cache_ttl": s.info.cache_ttl,
        "cache_enabled": s.info.cache,
        "service_tier": s.info.service_tier,
        "requests": {"sent": sent, "ok": ok, "throttled": st["throttled"], "error": st["error"],
                     "timeout": st["timeout"], "retries": s.retries},
        "errors": dict(sorted(s.errors.items())),
        "cache": {
            "cold": cold, "warm": warm, "none": s.cache["none"],
            "warm_ratio": round(warm / (warm + cold), 4) if warm + cold else 0.0,
            "race": s.partial["cache_race"],
            "mismatch": {
                "total": sum(s.mismatch.values()),
                "by_pair": {f"{p}->{o}": n for (p, o), n in sorted(s.mismatch.items())},
                # one guess per pair at why Bedrock disagreed with loadgen's cache model
                "likely_cause": {f"{p}->{o}": likely_cause(p, o, profile=s.info.profile)
                                 for (p, o) in sorted(s.mismatch)},
            },
        },
        "tokens": dict(zip(TOKEN_FIELDS, s.tokens)),
        "cost_usd": {
            "total": round(s.cost_total, 9),
            "per_1000": round(s.cost_total / ok * 1000.0, 9) if ok else 0.0,
            **{k: round(v, 9) for k, v in s.cost.items()},
        },
        # failed attempts billed on usage loadgen estimated (included in tokens and cost_usd)
        "usage_estimated": {"attempts": s.partial["usage_estimated"],
                            "cost_usd": round(s.partial["cost_estimated"], 9)},
        # `failed` beside every latency: failed attempts left out of ttft/e2e/service
        # (ok only), included in *_all and (first attempts) in schedule_lag
        "latency_ms": {m: latency_summary(s.hist(m), s.first_failed if m == "schedule_lag" else sent - ok)
                       for m in LATENCY_METRICS},
        "latency_clamped": s.clamped,
        "rpm_peak": rpm_peak,
        "tpm_peak": tpm_peak,
        "gap_buckets": gap_bucket_rows(s.gaps),
        **({"mode": "batch", "batch": s.batch.summary()} if s.batch is not None else {}),
    }
