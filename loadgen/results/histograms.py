"""Latency histograms: one set of HdrHistogram settings for the whole project, the metric
names summary.json uses, and a histogram's summary in milliseconds.

HdrHistogram.add() is exact only between histograms with the same layout (DESIGN.md
"Scaling out"), so every latency histogram in loadgen comes from `new_histogram()`.
Values are recorded in microseconds; summaries are in milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TextIO

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

HIST_UNIT = "us"
HIST_LOWEST_US = 1
HIST_HIGHEST_US = 24 * 3600 * 1_000_000  # 24 h: a stuck stream still lands in range
HIST_SIGFIGS = 3
OK_ONLY_METRICS = ("ttft", "e2e", "service")           # ok attempts only (the original keys)
ALL_ATTEMPTS = {m: f"{m}_all" for m in OK_ONLY_METRICS}   # the same latency over every attempt
LATENCY_METRICS = (*OK_ONLY_METRICS, "schedule_lag", *ALL_ATTEMPTS.values())
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9))


def new_histogram() -> HdrHistogram:
    """A latency histogram in microseconds, 1 us .. 24 h, 3 significant digits."""
    return HdrHistogram(HIST_LOWEST_US, HIST_HIGHEST_US, HIST_SIGFIGS)


def start_log(f: TextIO, arm: str, metric: str, wall_start: float | None) -> HistogramLogWriter:
    """An HdrHistogram interval log (format 1.2) on `f` with its header written: the
    version, `#[StartTime: ...]` when `wall_start` (Unix seconds) is known (interval
    timestamps are then scenario seconds relative to it), which arm and metric, the legend."""
    w = HistogramLogWriter(f)
    w.output_log_format_version()
    if wall_start is not None:
        # hdrh's own output_start_time is broken (datetime.iso_format); this is the
        # same line the Java writer emits.
        iso = datetime.fromtimestamp(wall_start, timezone.utc).isoformat(" ")
        w.output_comment(f"[StartTime: {wall_start:.3f} (seconds since epoch), {iso}]")
    w.output_comment(f"[loadgen arm={arm} metric={metric} unit={HIST_UNIT}]")
    w.output_legend()
    return w


_LAYOUT = new_histogram()
# record()'s inlined arithmetic is HdrHistogram's for a unit magnitude of 0 (lowest 1 us)
assert _LAYOUT.unit_magnitude == 0
_MASK = _LAYOUT.sub_bucket_mask                        # 2047 at 3 significant digits
_BUCKET0_BITS = _LAYOUT.sub_bucket_half_count_magnitude + 1
_HALF_MAG = _LAYOUT.sub_bucket_half_count_magnitude
_HALF = _LAYOUT.sub_bucket_half_count


def record_us(h: HdrHistogram, value: int) -> None:
    """`h.record_value(value)` for a histogram from new_histogram() and an int value in
    0..HIST_HIGHEST_US (callers clamp to that range): the same bucket and bookkeeping, in
    one function instead of the library's five method calls (a run records ~7 values per
    attempt; this halves their cost in `loadgen simulate`)."""
    bucket = (value | _MASK).bit_length() - _BUCKET0_BITS
    h.counts[((bucket + 1) << _HALF_MAG) + (value >> bucket) - _HALF] += 1
    h.total_count += 1
    if value < h.min_value:
        h.min_value = value
    if value > h.max_value:
        h.max_value = value


def record_us_twice(h: HdrHistogram, h2: HdrHistogram, value: int) -> None:
    """`record_us(h, value)` and `record_us(h2, value)`, the bucket found once: an ok
    attempt records the same value into an all-attempt and an ok-only histogram, three
    times per attempt. The per-histogram update is written out twice on purpose: one
    shared helper for it measured 415 -> 493 ns a call here (record_us 293 -> 349 ns)."""
    bucket = (value | _MASK).bit_length() - _BUCKET0_BITS
    i = ((bucket + 1) << _HALF_MAG) + (value >> bucket) - _HALF
    h.counts[i] += 1
    h.total_count += 1
    if value < h.min_value:
        h.min_value = value
    if value > h.max_value:
        h.max_value = value
    h2.counts[i] += 1
    h2.total_count += 1
    if value < h2.min_value:
        h2.min_value = value
    if value > h2.max_value:
        h2.max_value = value


def settings() -> dict:
    """The histogram settings as summary.json records them (`histograms`)."""
    return {"unit": HIST_UNIT, "lowest": HIST_LOWEST_US, "highest": HIST_HIGHEST_US,
            "significant_digits": HIST_SIGFIGS}


def mean_us(h: HdrHistogram) -> float:
    """Same figure as HdrHistogram.get_mean_value() (each count at its bucket's
    midpoint), but scanning only up to the max: the library walks all ~28k buckets,
    which made a summary cost ~0.1 s per histogram."""
    n = h.get_total_count()
    if not n:
        return 0.0
    counts = h.counts
    total = 0
    for i in range(min(h.get_counts_array_index(h.get_max_value()) + 1, h.counts_len)):
        c = counts[i]
        if c:
            v = h.get_value_from_index(i)
            lo = h.get_lowest_equivalent_value(v)
            total += c * (lo + ((h.get_highest_equivalent_value(v) - lo + 1) >> 1))
    return total / n


def latency_summary(h: HdrHistogram, failed: int | None = None) -> dict:
    """p50/p90/p99/p999/max/mean in milliseconds (None when empty) and count; with
    `failed` (failed attempts the figures include, or for an ok-only histogram leave
    out) that too."""
    n = h.get_total_count()
    if n == 0:
        d: dict = {k: None for k, _ in PERCENTILES}
        d.update(max=None, mean=None, count=0)
    else:
        vals = h.get_percentile_to_value_dict([p for _, p in PERCENTILES])
        d = {k: round(vals[p] / 1000.0, 3) for k, p in PERCENTILES}
        d["max"] = round(h.get_max_value() / 1000.0, 3)
        d["mean"] = round(mean_us(h) / 1000.0, 3)
        d["count"] = n
    if failed is not None:
        d["failed"] = failed
    return d


def recorded(h: HdrHistogram) -> list[tuple[int, int]]:
    """(value, count) of every non-empty bucket, lowest first; value is the bucket's
    highest equivalent value (what HdrHistogram reports a percentile as), in the
    histogram's unit (us). Scans only up to the max: hdrh's recorded-value iterator
    took ~0.1 s per histogram."""
    if not h.get_total_count():
        return []
    counts = h.counts
    out = []
    for i in range(min(h.get_counts_array_index(h.get_max_value()) + 1, h.counts_len)):
        c = counts[i]
        if c:
            out.append((h.get_highest_equivalent_value(h.get_value_from_index(i)), c))
    return out


def quick_summary(h: HdrHistogram, percentiles: tuple = PERCENTILES) -> dict:
    """`latency_summary` (without `failed`) in one scan up to the max: the same
    figures (hdrh's own percentile walk visits every bucket up to each target, ~4 ms
    a histogram; this is for many small interval histograms)."""
    n = h.get_total_count()
    if n == 0:
        d: dict = {k: None for k, _ in percentiles}
        d.update(max=None, mean=None, count=0)
        return d
    vc = recorded(h)
    d = {}
    targets = sorted((h.get_target_count_at_percentile(p), k) for k, p in percentiles)
    seen, j = 0, 0
    for v, c in vc:
        seen += c
        while j < len(targets) and seen >= targets[j][0]:
            d[targets[j][1]] = round(v / 1000.0, 3)
            j += 1
    d = {k: d[k] for k, _ in percentiles}
    d["max"] = round(h.get_max_value() / 1000.0, 3)
    d["mean"] = round(mean_us(h) / 1000.0, 3)
    d["count"] = n
    return d
