"""PNG plots of one results directory, and the sweep crossover chart.

matplotlib's object API (Figure + Agg canvas) is used, never pyplot: no display, no
global backend switch, and the import (~0.5 s) happens only when a plot is drawn.

Files, in DIR/plots/:
  latency.png       latency percentile spectrum per arm (HdrHistogram's log percentile axis),
                    every attempt, failed ones counted in the legend
  cache-by-gap.png  cache warm ratio against the gap since the previous call, 5m and 1h marked
  cost.png          cumulative cost over scenario time per arm
  throughput.png    requests, throttles and quota tokens per minute, with the quota when known
`sweep_chart` draws cost per 1000 against a swept scenario key, per arm.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from loadgen.results import series
from loadgen.results.directory import HISTOGRAM_DIR, read_histogram, safe_name
from loadgen.results.histograms import ALL_ATTEMPTS, LATENCY_METRICS
from loadgen.results.rebuild import rebuild_summary
from loadgen.scenario.sweep import Axis, crossovers, numeric, split_key

PLOT_DIR = "plots"
LATENCY_PNG, CACHE_PNG, COST_PNG, THROUGHPUT_PNG = "latency.png", "cache-by-gap.png", "cost.png", "throughput.png"
PANELS = ("ttft", "e2e", "service", "schedule_lag")   # latency.png's four panels
_TITLES = {"ttft": "time to first token (from intended start)", "e2e": "end to end (from intended start)",
           "service": "service time (from actual send)", "schedule_lag": "schedule lag (send - intended)"}
# Finer than summary.json's gap buckets around the two TTLs, so the drop shows where it happens.
GAP_EDGES_S = (0, 30, 60, 120, 180, 240, 270, 300, 330, 360, 480, 600, 900, 1200, 1800, 2700,
               3300, 3600, 3900, 4500, 5400, 7200, 10800)
DPI = 100


def _figure(w: float, h: float, nrows: int = 1, ncols: int = 1, **kw: Any):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, [ax for row in axes for ax in row]


def _save(fig: Any, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp, format="png")  # rename: a reader never sees half a PNG
    tmp.replace(out_png)
    return out_png


def _colors(names: Sequence[str]) -> dict[str, str]:
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def _styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Colour, dash and width per arm: arms often coincide (same arrivals, same prompts), and
    a later arm must not hide an earlier one, so later ones are thinner and dashed."""
    colors = _colors(names)
    dashes = ["-", (0, (5, 2)), (0, (2, 2)), (0, (6, 2, 1, 2))]
    return {n: {"color": colors[n], "linestyle": dashes[i % len(dashes)], "linewidth": max(1.0, 2.4 - 0.5 * i)}
            for i, n in enumerate(names)}


# ---- latency -----------------------------------------------------------------------


def _percentile_label(x: float) -> str:
    p = 100.0 * (1.0 - 1.0 / x)
    return f"{p:.{max(0, round(math.log10(x)) - 2)}f}%" if x >= 10 else f"{p:.0f}%"


def spectrum_points(h: Any, steps: int = 150) -> tuple[list[float], list[float]]:
    """(x, milliseconds) along HdrHistogram's percentile axis, x = 1 / (1 - p), up to the max.

    A count of n resolves percentiles up to 1 - 1/n (x = n), which stops short of the
    worst request (at n = 4 that is the 3rd value); the last point is the histogram's
    max at the same x, so the line ends with a rise to the max rather than hiding it.
    """
    n = h.get_total_count()
    xs = [10 ** (i * math.log10(max(n, 2)) / steps) for i in range(steps + 1)]
    pcts = [100.0 * (1.0 - 1.0 / x) for x in xs]
    vals = h.get_percentile_to_value_dict(pcts)
    return [*xs, xs[-1]], [*(vals[p] / 1000.0 for p in pcts), h.get_max_value() / 1000.0]


def latency_figure(hists: Mapping[str, Mapping[str, Any]], metrics: Sequence[str] = PANELS) -> Any:
    """The latency_spectrum figure (matplotlib Figure), not saved.

    A ttft / e2e / service panel draws every attempt (`<metric>_all`, failed ones at the
    time they failed) when that histogram is given, with the failed count in the legend,
    and the ok-only line dotted beside it when some failed; else the ok-only line alone.
    """
    fig, axes = _figure(11, 7.5, 2, 2)
    styles = _styles(list(hists))
    for ax, metric in zip(axes, metrics):
        top = 10.0
        for arm, per_metric in hists.items():
            h_ok = per_metric.get(metric)
            h_all = per_metric.get(ALL_ATTEMPTS[metric]) if metric in ALL_ATTEMPTS else None
            h = h_all if h_all is not None else h_ok
            n = h.get_total_count() if h is not None else 0
            if not n:
                continue
            top = max(top, float(n))
            n_ok = h_ok.get_total_count() if h_ok is not None else 0
            failed = n - n_ok if h_all is not None else 0
            xs, ys = spectrum_points(h)
            what = f"n={n}, {failed} failed" if failed else f"n={n}"
            ax.plot(xs, ys, label=f"{arm} ({what}, max {series.format_ms(ys[-1])})", drawstyle="steps-post",
                    **styles[arm])
            # the worst request, marked where its line ends
            ax.plot([xs[-1]], [ys[-1]], marker="^", markersize=7, color=styles[arm]["color"], linestyle="none")
            if failed and n_ok:
                oxs, oys = spectrum_points(h_ok)
                ax.plot(oxs, oys, label=f"{arm}, ok only (n={n_ok})", drawstyle="steps-post",
                        color=styles[arm]["color"], linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        ticks = [t for t in (1, 2, 10, 100, 1000, 10000, 100000, 1000000) if t <= top * 1.01]
        ax.set_xticks(ticks, [_percentile_label(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(1, top * 1.5)   # room right of x = n, so the max marker is not on the frame
        ax.set_ylim(bottom=0)
        ax.set_title(_TITLES.get(metric, metric), fontsize=10)
        ax.set_xlabel("percentile (triangle: max)")
        ax.set_ylabel("ms")
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            _legend(ax, fontsize=8, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.suptitle("Latency by percentile, per arm, every attempt (failed ones at the time they failed)")
    return fig


def latency_spectrum(hists: Mapping[str, Mapping[str, Any]], out_png: Path,
                     metrics: Sequence[str] = PANELS) -> Path:
    """Latency against percentile, one line per arm, one panel per metric.

    `hists`: arm -> metric -> HdrHistogram (values in microseconds). The x axis is
    HdrHistogram's: 1 / (1 - p) on a log scale, so 90 %, 99 %, 99.9 % are evenly
    spaced; each line runs to the last percentile its count can resolve (1 - 1/n),
    then rises to the max, marked with a triangle and given in the legend.
    """
    return _save(latency_figure(hists, metrics), out_png)


def _legend(ax: Any, **kw: Any) -> None:
    """A legend only when something on `ax` has a label: matplotlib warns "No artists with
    labels found to put in legend" otherwise (an empty run)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def histograms_from_requests(attempts: Sequence[Mapping]) -> dict[str, dict[str, Any]]:
    """arm -> metric -> HdrHistogram (us) rebuilt from requests.jsonl, for a directory whose
    histograms/ are missing: folded through `loadgen.results.metrics.Metrics` (via
    `rebuild.rebuild_summary`), so the lines follow the runner's rules exactly (schedule
    lag counts first attempts only). ValueError names a record that is not an attempt."""
    _, metrics = rebuild_summary(attempts)
    return {a: {m: metrics.histogram(a, m) for m in LATENCY_METRICS} for a in metrics.arm_names}


# ---- cache warm ratio by gap -------------------------------------------------------


def cache_by_gap(points: Mapping[str, Sequence[tuple[float, bool]]], out_png: Path, *,
                 buckets: Mapping[str, Sequence[Mapping]] | None = None,
                 edges_s: Sequence[float] = GAP_EDGES_S) -> Path:
    """Warm ratio against the gap since the cache key's previous use, per arm.

    `points`: arm -> [(gap seconds, warm?)] (series.gap_points); each one is drawn as a
    faint tick at 1 (warm) or 0 (cold), and binned ratios as a line. Without points,
    `buckets` (summary.json gap_buckets per arm) give the line. 5m and 1h are marked.
    """
    fig, (ax,) = _figure(10, 5)
    names = list(points) or list(buckets or {})
    colors = _colors(names)
    styles = _styles(names)
    for k, arm in enumerate(names):
        pts = points.get(arm, ())
        if pts:
            bins = series.warm_ratio_bins(pts, edges_s)
            xs = [_bin_mid(lo, hi) / 60 for lo, hi, _, _ in bins]
            ys = [r for *_, r in bins]
            sizes = [12 + 4 * math.sqrt(n) for _, _, n, _ in bins]
            ax.plot(xs, ys, label=f"{arm} ({len(pts)} calls after a gap)", **styles[arm])
            ax.scatter(xs, ys, s=sizes, color=colors[arm], zorder=3, marker="os^D"[k % 4], alpha=0.8)
            # raw calls as a rug just above 1 (warm) and below 0 (cold), offset per arm
            off = 0.025 * (k + 1)
            ax.scatter([max(g, 1.0) / 60 for g, _ in pts], [1 + off if w else -off for _, w in pts],
                       s=6, marker="|", color=colors[arm], alpha=0.5, linewidths=0.8)
        elif buckets and buckets.get(arm):
            rows = [b for b in buckets[arm] if b.get("warm", 0) + b.get("cold", 0)]
            xs = [_bin_mid(b["lo_s"], b["hi_s"] if b.get("hi_s") is not None else math.inf) / 60 for b in rows]
            ax.plot(xs, [b["warm_ratio"] for b in rows], "o-", color=colors[arm], label=f"{arm} (summary buckets)")
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
    _legend(ax, fontsize=9, loc="lower left")
    return _save(fig, out_png)


def _bin_mid(lo: float, hi: float) -> float:
    """Geometric middle of a gap bin in seconds (the x axis is logarithmic)."""
    if math.isinf(hi):
        return lo * 1.25
    return math.sqrt(max(lo, 10.0) * hi)


# ---- cost --------------------------------------------------------------------------


def cumulative_cost(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], out_png: Path) -> Path:
    """Running cost in USD against scenario time (minutes), one step line per arm."""
    fig, (ax,) = _figure(10, 4.5)
    styles = _styles(list(curves))
    for arm, (ts, ys) in curves.items():
        if not ts:
            continue
        xs = [0.0, *(t / 60 for t in ts)]
        ax.step(xs, [0.0, *ys], where="post", label=f"{arm}: ${ys[-1]:.4f}", **styles[arm])
    ax.set_xlabel("scenario time (minutes)")
    ax.set_ylabel("cumulative cost (USD)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title("Cumulative cost over scenario time, per arm")
    _legend(ax, fontsize=9, loc="upper left")
    return _save(fig, out_png)


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
    fig, axes = _figure(10, 8.5, 3, 1, sharex=True)
    arms = [a for a in per_min if a != "*"]
    styles = _styles(arms)
    quotas = quotas or {}
    groups = {k: v for k, v in (groups or {}).items() if len(v) > 1}
    panels = (("requests", "requests / min", 1), ("throttled", "throttled / min", None),
              ("tokens", "quota tokens / min\n(input + cache write\n+ output x burndown)", 0))
    for ax, (field, ylabel, quota_idx) in zip(axes, panels):
        top = 0.0
        for arm in arms:
            ys = getattr(per_min[arm], field)
            top = max(top, max(ys, default=0))
            ax.step(*_steps(ys), where="post", label=arm, **styles[arm])
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
        _legend(ax, fontsize=8, loc="upper left")
    axes[0].set_title("Requests, throttles and tokens per minute of scenario time, with the quota")
    axes[-1].set_xlabel("scenario time (minutes)")
    axes[-1].set_xlim(left=0)
    return _save(fig, out_png)


def _steps(ys: Sequence[float]) -> tuple[list[int], list[float]]:
    """Minute i drawn from i to i + 1: a "post" step needs one more point to show the last minute."""
    return list(range(len(ys) + 1)), [*ys, ys[-1] if ys else 0]


# ---- sweeps ------------------------------------------------------------------------


def _sweep_axes(rows: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """The sweep's axes (`sweep.Axis`), values as typed, in first-seen order.

    `sweep.row` puts the axis columns first, before "point"; the other axes are needed
    so series that differ in them are not joined into one line (nor compared as one).
    """
    for r in rows:
        if key not in r:
            raise KeyError(f"sweep row has no value for {key!r}: {dict(r)!r}")
    cols = list(rows[0]) if rows else [key]
    keys = cols[:cols.index("point")] if "point" in cols else []
    keys = keys if key in keys else [key]
    return [Axis(k, split_key(k), tuple(dict.fromkeys(str(r.get(k)) for r in rows))) for k in keys]


def sweep_chart(sweep_rows: Sequence[Mapping[str, Any]], key: str, out_png: str | Path) -> Path:
    """Cost per 1000 ok requests (USD) against the swept scenario key, one line per arm
    (and per value of any other swept key).

    `sweep_rows`: sweep.csv rows (`loadgen.scenario.sweep.row`): the point's value for `key` at
    row[key], "arm" and "cost_per_1000". Numbers, durations ("5m") and rates ("20/s")
    are placed on a numeric axis (`sweep.numeric`), anything else in order. Crossings are
    `sweep.crossovers`, the same ones (ties included) the sweep's text prints; none are
    marked on a non-numeric axis, as none are printed. A "warm_ratio" column, when
    present, is drawn in a second panel.
    """
    axes_ = _sweep_axes(sweep_rows, key)
    axis = next(a for a in axes_ if a.key == key)
    others = [a for a in axes_ if a is not axis]
    nums = {v: numeric(v) for v in axis.values}
    kinds = {n[1] for n in nums.values() if n is not None}
    numeric_axis = bool(nums) and None not in nums.values() and len(kinds) == 1
    pos = {v: nums[v][0] if numeric_axis else float(i) for i, v in enumerate(axis.values)}  # type: ignore[index]
    by_line: dict[str, list[tuple[float, Mapping]]] = {}
    for r in sweep_rows:
        fixed = ", ".join(f"{a.short}={r.get(a.key)}" for a in others)
        label = f"{r['arm']} ({fixed})" if fixed else str(r["arm"])
        by_line.setdefault(label, []).append((pos[str(r[key])], r))
    has_warm = any("warm_ratio" in r for r in sweep_rows)
    fig, axes = _figure(10, 7 if has_warm else 4.5, 2 if has_warm else 1, 1, sharex=True)
    colors = _colors(list(by_line))
    for label, pts in by_line.items():
        pts.sort(key=lambda p: p[0])
        pts = [p for p in pts if p[1].get("cost_per_1000") is not None]
        px = [x for x, _ in pts]
        axes[0].plot(px, [float(r["cost_per_1000"]) for _, r in pts], "o-", color=colors[label], label=label)
        if has_warm:
            axes[1].plot(px, [float(r.get("warm_ratio") if r.get("warm_ratio") is not None else math.nan) * 100
                              for _, r in pts], "o-", color=colors[label], label=label)
    for c in crossovers(sweep_rows, axes_) if numeric_axis else ():
        if c.key != key:
            continue
        est = numeric(c.estimate)
        cx = est[0] if est is not None else (pos[c.between[0]] + pos[c.between[1]]) / 2
        at = f" ({', '.join(f'{k}={v}' for k, v in c.fixed)})" if c.fixed else ""
        axes[0].axvline(cx, color="gray", linestyle=":", linewidth=1)
        axes[0].annotate(f" crossover {c.cheaper_below} / {c.cheaper_above}{at}\n {key} ~ {c.estimate}", (cx, 0.97),
                         xycoords=("data", "axes fraction"), ha="left", va="top", fontsize=8)
    xs = list(pos.values())
    if numeric_axis and xs and min(xs) > 0 and max(xs) / min(xs) > 10:
        for ax in axes:
            ax.set_xscale("log")
    if not numeric_axis or kinds != {"number"}:
        axes[-1].set_xticks(xs, list(pos))   # the values as typed: "5m", "20/s", "geo"
        axes[-1].minorticks_off()
    axes[0].set_ylabel("cost per 1000 ok requests (USD)")
    axes[0].set_title(f"Cost per 1000 requests against {key}, per arm")
    axes[0].set_ylim(bottom=0)
    _legend(axes[0], fontsize=9)
    if has_warm:
        axes[1].set_ylabel("warm ratio (%)")
        axes[1].set_ylim(0, 105)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel(key)
    return _save(fig, Path(out_png))


# ---- one results directory ---------------------------------------------------------


def write_plots(results_dir: str | Path, summary: Mapping[str, Any], attempts: Sequence[Mapping], *,
                quotas: Mapping[str, tuple[int, int] | None] | None = None,
                burndown: Callable[[str], float] = lambda model_id: 1.0,
                histograms: Mapping[str, Mapping[str, Any]] | None = None) -> list[Path]:
    """Write the four plots of one run into results_dir/plots/; returns their paths.

    Latency comes from `histograms` (arm -> metric -> HdrHistogram in us) when given,
    else histograms/<arm>.<metric>.hlog when present, else from `attempts`.
    """
    d = Path(results_dir)
    out = d / PLOT_DIR
    arms = list(summary.get("arms", {}))
    hists: dict[str, dict[str, Any]] = {}
    rebuilt = None
    for arm in arms:
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
    written = [latency_spectrum(hists, out / LATENCY_PNG)]
    gap_pts = series.gap_points(attempts)
    written.append(cache_by_gap({a: gap_pts.get(a, []) for a in arms} if gap_pts else {}, out / CACHE_PNG,
                                buckets={a: summary["arms"][a].get("gap_buckets", []) for a in arms}))
    costs = series.cumulative_cost(attempts)
    written.append(cumulative_cost({a: costs.get(a, ((), ())) for a in arms}, out / COST_PNG))
    pm = series.per_minute(attempts, span_s=summary.get("scenario_s"), burndown=burndown)
    groups: dict[str, list[str]] = {}
    for a in arms:
        groups.setdefault(summary["arms"][a].get("model_id", "?"), []).append(a)
    empty = series.MinuteSeries((0,), (0,), (0,), (0,))
    written.append(throughput({a: pm.get(a, empty) for a in arms}, out / THROUGHPUT_PNG,
                              quotas=quotas, groups=groups))
    return written
