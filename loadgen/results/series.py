"""Time series and point sets from requests.jsonl records, for plots and the report.

Pure: each function takes the attempt dicts (`loadgen.results.directory.load_attempts`) and
returns plain data. Times are scenario seconds; tokens are tokens; money is USD.
Conventions follow summary.json (docs/results-format.md): an attempt counts towards
requests per minute in the minute it was sent and towards tokens per minute in the
minute it ended.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from loadgen.results.gap_buckets import gap_bucket_index


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


def per_minute(attempts: Iterable[Mapping], *, span_s: float | None = None,
               burndown: Callable[[str], float] = lambda model_id: 1.0) -> dict[str, MinuteSeries]:
    """MinuteSeries per arm, plus "*" for all arms together (arms on one model and
    profile share a quota). `burndown(model_id)` gives the output-token factor.
    `span_s`: scenario seconds the run covered (defaults to the last attempt's end)."""
    rows = list(attempts)
    end = max((a.get("end") or a.get("start") or 0.0 for a in rows), default=0.0)
    n = _minutes(max(span_s or 0.0, end))
    acc: dict[str, list[list[int]]] = {}
    factors: dict[str, float] = {}
    for a in rows:
        mid = a.get("model_id") or ""
        if mid not in factors:
            factors[mid] = burndown(mid)
        for key in (a["arm"], "*"):
            cols = acc.setdefault(key, [[0] * n for _ in range(4)])
            i = min(n - 1, int((a.get("start") or 0.0) // 60))
            j = min(n - 1, int((a.get("end") or a.get("start") or 0.0) // 60))
            cols[0][i] += 1
            if a.get("status") == "throttled":
                cols[1][i] += 1
            cols[2][j] += quota_tokens(a, factors[mid])
            cols[3][j] += sum(int(a.get(k) or 0) for k in ("input_tokens", "cache_read", "cache_write",
                                                             "output_tokens"))
    return {k: MinuteSeries(*(tuple(c) for c in v)) for k, v in acc.items()}


def rolling_peak(events: Sequence[tuple[float, float]], window_s: float = 60.0) -> float:
    """Largest sum of `weight` over any `window_s` seconds, from (time_s, weight) events."""
    q: deque[tuple[float, float]] = deque()
    total = best = 0.0
    for t, w in sorted(events):
        q.append((t, w))
        total += w
        while q[0][0] <= t - window_s:
            total -= q.popleft()[1]
        best = max(best, total)
    return best


def peak_quota_tpm(attempts: Iterable[Mapping], burndown: Callable[[str], float]) -> dict[str, float]:
    """Peak quota tokens in any rolling 60 s (with burndown), per arm and "*" for all."""
    ev: dict[str, list[tuple[float, float]]] = {}
    for a in attempts:
        w = quota_tokens(a, burndown(a.get("model_id") or ""))
        t = a.get("end") or a.get("start") or 0.0
        ev.setdefault(a["arm"], []).append((t, w))
        ev.setdefault("*", []).append((t, w))
    return {k: rolling_peak(v) for k, v in ev.items()}


def cumulative_cost(attempts: Iterable[Mapping]) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """Per arm: (end times in scenario seconds, running total cost in USD), in time order."""
    by_arm: dict[str, list[tuple[float, float]]] = {}
    for a in attempts:
        by_arm.setdefault(a["arm"], []).append((a.get("end") or a.get("start") or 0.0,
                                                float(a.get("cost_usd") or 0.0)))
    out = {}
    for arm, ev in by_arm.items():
        ev.sort()
        total, ys = 0.0, []
        for _, c in ev:
            total += c
            ys.append(total)
        out[arm] = (tuple(t for t, _ in ev), tuple(ys))
    return out


def gap_points(attempts: Iterable[Mapping]) -> dict[str, list[tuple[float, bool]]]:
    """Per arm: (gap since the cache key's previous use in seconds, warm?) for ok attempts
    that read or wrote the cache after an earlier use (a `none` state says nothing about TTL)."""
    out: dict[str, list[tuple[float, bool]]] = {}
    for a in attempts:
        if a.get("status") != "ok" or a.get("gap_s") is None or a.get("cache_state") not in ("warm", "cold"):
            continue
        out.setdefault(a["arm"], []).append((float(a["gap_s"]), a["cache_state"] == "warm"))
    return out


def warm_ratio_bins(points: Sequence[tuple[float, bool]], edges_s: Sequence[float]
                    ) -> list[tuple[float, float, int, float]]:
    """(lo_s, hi_s, n, warm ratio) per non-empty bin `lo <= gap < hi`; the last edge is open
    (summary.json's bucketing rule, here with any edges)."""
    bins = [[0, 0] for _ in edges_s]
    for gap, warm in points:
        i = gap_bucket_index(gap, edges_s)
        bins[i][0] += 1
        bins[i][1] += warm
    out = []
    for i, (n, w) in enumerate(bins):
        if n:
            hi = edges_s[i + 1] if i + 1 < len(edges_s) else math.inf
            out.append((edges_s[i], hi, n, w / n))
    return out
