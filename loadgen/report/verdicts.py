"""Threshold verdicts of a run: the scenario's [thresholds] checked against a RunView.

Percentiles come from the run's HdrHistograms (histograms/<arm>.<metric>.hlog, or the
ones in memory for a rebuilt summary), so a gate like `p99(ttft) < 3s` reads the exact
histogram, not summary.json's rounded figures. The verdicts set `run` / `report`'s exit
code (1 when one fails).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from loadgen.report.view import RunView
from loadgen.results.directory import HISTOGRAM_DIR, read_histogram, safe_name
from loadgen.scenario import thresholds


def percentile_from_histograms(path: Path, in_memory: "Mapping[str, Mapping[str, Any]] | None" = None
                               ) -> Callable[[str, str, float], "float | None"]:
    """A thresholds.PercentileFn reading histograms/<arm>.<metric>.hlog (ms), or `in_memory`
    (arm -> metric -> HdrHistogram in us) when given. Each file is read once: several
    thresholds often ask the same histogram (p50 and p99 of ttft)."""
    cache: dict[tuple[str, str], Any] = {}

    def hist(arm: str, metric: str) -> Any:
        if in_memory is not None:
            return in_memory.get(arm, {}).get(metric)
        if (arm, metric) not in cache:
            p = path / HISTOGRAM_DIR / f"{safe_name(arm)}.{metric}.hlog"
            cache[arm, metric] = read_histogram(p) if p.exists() else None
        return cache[arm, metric]

    def get(arm: str, metric: str, pct: float) -> float | None:
        h = hist(arm, metric)
        if h is None:
            return None
        return h.get_value_at_percentile(pct) / 1000.0 if h.get_total_count() else None

    return get


def check_thresholds(view: RunView) -> list:
    """thresholds.Result per threshold of the view's scenario, in scenario order."""
    # tpm is the same figure as the quota table's "peak TPM x burndown" column: one function.
    return thresholds.check(view.thresholds, view.summary,
                            percentile=percentile_from_histograms(view.path, view.histograms),
                            peak_tpm=view.peaks_burndown if view.attempts_read else None)
