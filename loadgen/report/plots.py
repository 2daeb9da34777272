"""The PNG plots of one results directory (`write_plots`), in DIR/plots/:

  latency.png       latency percentile spectrum per arm (HdrHistogram's log percentile axis),
                    every attempt, failed ones counted in the legend (`latency_plot`)
  cache-by-gap.png  cache warm ratio against the gap since the previous call, 5m and 1h marked
  cost.png          cumulative cost over scenario time per arm
  throughput.png    requests, throttles and quota tokens per minute, with the quota when known

The sweep's chart is `sweep_chart`; what the plots share (figure set-up, colours, saving)
is `figures`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from loadgen.report.figures import colors, figure, legend, save, styles
from loadgen.report.latency_plot import latency_spectrum
from loadgen.results import series
from loadgen.results.directory import HISTOGRAM_DIR, read_histogram, safe_name
from loadgen.results.gap_buckets import PLOT_GAP_EDGES_S as GAP_EDGES_S
from loadgen.results.histograms import LATENCY_METRICS
from loadgen.results.rebuild import rebuild_summary
from loadgen.results.series import GapSeries, RunSeries

PLOT_DIR = "plots"
LATENCY_PNG, CACHE_PNG, COST_PNG, THROUGHPUT_PNG = "latency.png", "cache-by-gap.png", "cost.png", "throughput.png"


def histograms_from_requests(attempts: Iterable[Mapping]) -> dict[str, dict[str, Any]]:
    """arm -> metric -> HdrHistogram (us) rebuilt from requests.jsonl, for a directory whose
    histograms/ are missing: folded through `loadgen.results.metrics.Metrics` (via
    `rebuild.rebuild_summary`), so the lines follow the runner's rules exactly (schedule
    lag counts first attempts only). ValueError names a record that is not an attempt."""
    _, metrics = rebuild_summary(attempts)
    return {a: {m: metrics.histogram(a, m) for m in LATENCY_METRICS} for a in metrics.arm_names}


# ---- cache warm ratio by gap -------------------------------------------------------


def cache_by_gap(gaps: Mapping[str, GapSeries], out_png: Path, *,
                 buckets: Mapping[str, Sequence[Mapping]] | None = None) -> Path:
    """Warm ratio against the gap since the cache key's previous use, per arm.

    `gaps`: arm -> GapSeries (`series.RunSeries.gaps`): its binned ratios as a line, and
    its calls as faint ticks at 1 (warm) or 0 (cold), one per distinct gap at the plot's
    resolution (RUG_STEPS per decade). Without them, `buckets` (summary.json gap_buckets
    per arm) give the line. 5m and 1h are marked.
    """
    fig, (ax,) = figure(10, 5, left=0.95, bottom=0.6, top=0.4)
    names = list(gaps) or list(buckets or {})
    color = colors(names)
    style = styles(names)
    for k, arm in enumerate(names):
        g = gaps.get(arm)
        if g is not None and g.n:
            bins = g.warm_ratio_bins()
            xs = [_bin_mid(lo, hi) / 60 for lo, hi, _, _ in bins]
            ys = [r for *_, r in bins]
            sizes = [12 + 4 * math.sqrt(n) for _, _, n, _ in bins]
            ax.plot(xs, ys, label=f"{arm} ({g.n} calls after a gap)", **style[arm])
            ax.scatter(xs, ys, s=sizes, color=color[arm], zorder=3, marker="os^D"[k % 4], alpha=0.8)
            # calls as a rug just above 1 (warm) and below 0 (cold), offset per arm
            off = 0.025 * (k + 1)
            rug = g.rug_points()
            ax.scatter([max(gap, 1.0) / 60 for gap, _ in rug], [1 + off if w else -off for _, w in rug],
                       s=6, marker="|", color=color[arm], alpha=0.5, linewidths=0.8)
        elif buckets and buckets.get(arm):
            rows = [b for b in buckets[arm] if b.get("warm", 0) + b.get("cold", 0)]
            xs = [_bin_mid(b["lo_s"], b["hi_s"] if b.get("hi_s") is not None else math.inf) / 60 for b in rows]
            ax.plot(xs, [b["warm_ratio"] for b in rows], "o-", color=color[arm], label=f"{arm} (summary buckets)")
    for ttl_min, label in ((5, "5m TTL"), (60, "1h TTL")):
        ax.axvline(ttl_min, color="black", linestyle="--", linewidth=1, alpha=0.7)
        ax.text(ttl_min * 1.04, 0.5, label, rotation=90, va="center", fontsize=9)
    ax.set_xscale("log")
    ticks = [0.5, 1, 2, 5, 10, 30, 60, 120]
    ax.set_xticks(ticks, [f"{t:g}m" for t in ticks])
    ax.minorticks_off()
    ax.set_xlim(1 / 60 * 10, 180)
    ax.set_ylim(-0.05 - 0.025 * len(names), 1.05 + 0.025 * len(names))
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0%", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("gap since the previous call on the same cache prefix (log scale)")
    ax.set_ylabel("warm ratio (cache read)")
    ax.grid(True, alpha=0.3)
    ax.set_title("Cache warm ratio against the gap since the previous call (ok calls; ticks: each call)")
    legend(ax, fontsize=9, loc="lower left")
    return save(fig, out_png)


def _bin_mid(lo: float, hi: float) -> float:
    """Geometric middle of a gap bin in seconds (the x axis is logarithmic)."""
    if math.isinf(hi):
        return lo * 1.25
    return math.sqrt(max(lo, 10.0) * hi)


# ---- cost --------------------------------------------------------------------------


def cumulative_cost(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], out_png: Path) -> Path:
    """Running cost in USD against scenario time (minutes), one step line per arm; `curves`:
    arm -> (times, running totals), per time bin (`series.CostBins`: at most MAX_COST_BINS)."""
    fig, (ax,) = figure(10, 4.5, left=0.85, bottom=0.6, top=0.4)
    style = styles(list(curves))
    for arm, (ts, ys) in curves.items():
        if not ts:
            continue
        xs = [0.0, *(t / 60 for t in ts)]
        ax.step(xs, [0.0, *ys], where="post", label=f"{arm}: ${ys[-1]:.4f}", **style[arm])
    ax.set_xlabel("scenario time (minutes)")
    ax.set_ylabel("cumulative cost (USD)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("Cumulative cost over scenario time, per arm")
    legend(ax, fontsize=9, loc="upper left")
    return save(fig, out_png)


# ---- throughput --------------------------------------------------------------------


def throughput(per_min: Mapping[str, series.MinuteSeries], out_png: Path, *,
               quotas: Mapping[str, tuple[int, int] | None] | None = None,
               groups: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Requests, throttles and quota tokens per scenario minute, per arm.

    `quotas`: arm -> (tpm, rpm) in force (0 = none), or None when unknown (real AWS).
    `groups`: label -> arms that share one quota (same model id as called); their sum is
    drawn dashed, since it is the sum that meets the quota. A quota far above the data
    is stated in the panel rather than drawn, so the data stays readable.
    """
    fig, axes = figure(10, 8.5, 3, 1, sharex=True, left=1.25, bottom=0.55, top=0.35, hspace=0.08)
    arms = [a for a in per_min if a != "*"]
    style = styles(arms)
    quotas = quotas or {}
    groups = {k: v for k, v in (groups or {}).items() if len(v) > 1}
    panels = (("requests", "requests / min", 1), ("throttled", "throttled / min", None),
              ("tokens", "quota tokens / min\n(input + cache write\n+ output x burndown)", 0))
    for ax, (field, ylabel, quota_idx) in zip(axes, panels):
        top = 0.0
        for arm in arms:
            ys = getattr(per_min[arm], field)
            top = max(top, max(ys, default=0))
            ax.step(*_steps(ys), where="post", label=arm, **style[arm])
        for label, members in groups.items():
            cols = [getattr(per_min[m], field) for m in members if m in per_min]
            ys = [sum(v) for v in zip(*cols)]
            top = max(top, max(ys, default=0))
            ax.step(*_steps(ys), where="post", color="black", linestyle="--", linewidth=1,
                    label=f"sum: {label}")
        notes = []
        if quota_idx is not None:
            name = "TPM" if quota_idx == 0 else "RPM"
            seen = set()
            for arm in arms:
                q = quotas.get(arm)
                if q is None:
                    notes.append(f"{arm}: {name} quota unknown")
                    continue
                limit = q[quota_idx]
                if not limit or limit in seen:
                    if not limit and quota_idx == 0:
                        notes.append(f"{arm}: no {name} quota (unlimited)")
                    continue
                seen.add(limit)
                if limit <= 3 * max(top, 1):
                    ax.axhline(limit, color="red", linestyle="-.", linewidth=1.2)
                    ax.text(0.99, limit, f"{name} quota {limit:,} ", color="red", va="bottom", ha="right",
                            transform=ax.get_yaxis_transform(), fontsize=9)
                    top = max(top, limit)
                else:
                    notes.append(f"{name} quota {limit:,} is off this scale: peak minute uses "
                                 f"{100 * top / limit:.1f} %")
        if field == "throttled" and not top:
            notes.append("no throttled attempts")
        ax.set_ylim(0, max(1.0, top) * 1.12)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(True, alpha=0.3)
        if notes:
            ax.text(0.99, 0.95, "\n".join(dict.fromkeys(notes)), transform=ax.transAxes, ha="right",
                    va="top", fontsize=9, color="red" if quota_idx == 0 else "black",
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        legend(ax, fontsize=8, loc="upper left")
    axes[0].set_title("Requests, throttles and tokens per minute of scenario time, with the quota")
    axes[-1].set_xlabel("scenario time (minutes)")
    axes[-1].set_xlim(left=0)
    return save(fig, out_png)


def _steps(ys: Sequence[float]) -> tuple[list[int], list[float]]:
    """Minute i drawn from i to i + 1: a "post" step needs one more point to show the last minute."""
    return list(range(len(ys) + 1)), [*ys, ys[-1] if ys else 0]


# ---- one results directory ---------------------------------------------------------


def write_plots(results_dir: str | Path, summary: Mapping[str, Any], attempts: Iterable[Mapping] = (), *,
                run_series: RunSeries | None = None,
                quotas: Mapping[str, tuple[int, int] | None] | None = None,
                burndown: Callable[[str], float] = lambda model_id: 1.0,
                histograms: Mapping[str, Mapping[str, Any]] | None = None) -> list[Path]:
    """Write the four plots of one run into results_dir/plots/; returns their paths.

    `run_series`: the attempts already folded (`series.RunSeries`, what `report.view` keeps);
    else `attempts` (any iterable of requests.jsonl records) is folded here, in one pass.
    Latency comes from `histograms` (arm -> metric -> HdrHistogram in us) when given,
    else histograms/<arm>.<metric>.hlog when present, else from `attempts` (read once more:
    with `run_series` given, pass a fresh iterable such as `load_attempts(results_dir)`).
    """
    d = Path(results_dir)
    out = d / PLOT_DIR
    arms = list(summary.get("arms", {}))
    # A batch arm's results come back in hours, not seconds: drawn on the same axis it would
    # flatten every on-demand line. Its latency is in the report's batch table instead.
    batch = [a for a in arms if summary["arms"][a].get("mode") == "batch"]
    hists: dict[str, dict[str, Any]] = {}
    rebuilt = None
    if run_series is None:
        if histograms is None and not all((d / HISTOGRAM_DIR / f"{safe_name(a)}.{m}.hlog").exists()
                                          for a in arms if a not in batch for m in LATENCY_METRICS):
            attempts = list(attempts)  # read twice: folded below and rebuilt here (no histograms/)
        run_series = RunSeries.of(attempts, burndown=burndown)
    for arm in (a for a in arms if a not in batch):
        for m in LATENCY_METRICS:
            p = d / HISTOGRAM_DIR / f"{safe_name(arm)}.{m}.hlog"
            if histograms is not None:
                hists.setdefault(arm, {})[m] = histograms.get(arm, {}).get(m)
            elif p.exists():
                hists.setdefault(arm, {})[m] = read_histogram(p)
            else:
                if rebuilt is None:  # only for a directory without its .hlog files (a killed run)
                    rebuilt = histograms_from_requests(attempts)
                hists.setdefault(arm, {})[m] = rebuilt.get(arm, {}).get(m)
    note = (f"batch arm{'s' if len(batch) > 1 else ''} {', '.join(repr(a) for a in batch)} not drawn (results in hours: "
            "see the batch table)") if batch else None
    written = [latency_spectrum(hists, out / LATENCY_PNG, note=note)]
    gaps = run_series.gaps
    written.append(cache_by_gap({a: gaps.get(a, GapSeries(GAP_EDGES_S)) for a in arms} if gaps else {},
                                out / CACHE_PNG, buckets={a: summary["arms"][a].get("gap_buckets", []) for a in arms}))
    costs = run_series.cumulative_cost()
    written.append(cumulative_cost({a: costs.get(a, ((), ())) for a in arms}, out / COST_PNG))
    pm = run_series.per_minute(span_s=summary.get("scenario_s"))
    groups: dict[str, list[str]] = {}
    for a in arms:
        groups.setdefault(summary["arms"][a].get("model_id", "?"), []).append(a)
    empty = series.MinuteSeries((0,), (0,), (0,), (0,))
    written.append(throughput({a: pm.get(a, empty) for a in arms}, out / THROUGHPUT_PNG,
                              quotas=quotas, groups=groups))
    return written
