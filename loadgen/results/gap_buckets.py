"""Cache warm/cold counts by the gap since the previous call on the same prefix.

The summary's buckets (`GAP_EDGES_S`, seconds) are fine around the 5-minute default
TTL (4-5m, 5-6m) and coarse elsewhere; 1 h is the long TTL. The bucketing rule
(`gap_bucket_index`) takes any edges, so the plots use it with finer ones
(`PLOT_GAP_EDGES_S`).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Mapping, Sequence

GAP_EDGES_S = (0.0, 60.0, 120.0, 240.0, 300.0, 360.0, 600.0, 1800.0, 3600.0)
# Finer than summary.json's buckets around the two TTLs, so the plot's drop shows where it happens.
PLOT_GAP_EDGES_S = (0, 30, 60, 120, 180, 240, 270, 300, 330, 360, 480, 600, 900, 1200, 1800, 2700,
                    3300, 3600, 3900, 4500, 5400, 7200, 10800)


def gap_bucket_labels(edges: Sequence[float] = GAP_EDGES_S) -> tuple[str, ...]:
    """Human labels for the buckets of `edges`: "0-1m", "1-2m", ..., "60m+"."""
    labels = [f"{lo / 60:g}-{hi / 60:g}m" for lo, hi in zip(edges, edges[1:])]
    labels.append(f"{edges[-1] / 60:g}m+")
    return tuple(labels)


def gap_bucket_index(gap_s: float, edges: Sequence[float] = GAP_EDGES_S) -> int:
    """Index of the bucket holding `gap_s` seconds: edges[i] <= gap_s < edges[i+1].

    Negative gaps (clock rounding) fall into the first bucket.
    """
    return max(0, bisect_right(edges, gap_s) - 1)


def gap_bucket_rows(counts: Sequence[Mapping[str, int]]) -> list[dict]:
    """summary.json `gap_buckets`: one dict per bucket of GAP_EDGES_S from its
    {"warm", "cold", "none"} counts (ok attempts), with label, edges and warm ratio."""
    labels = gap_bucket_labels()
    edges = GAP_EDGES_S
    rows = []
    for i, g in enumerate(counts):
        n = g["warm"] + g["cold"]
        rows.append({
            "label": labels[i], "lo_s": edges[i], "hi_s": edges[i + 1] if i + 1 < len(edges) else None,
            "warm": g["warm"], "cold": g["cold"], "none": g["none"],
            "warm_ratio": round(g["warm"] / n, 4) if n else 0.0,
        })
    return rows
