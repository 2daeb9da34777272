"""sweep.png: cost per 1000 requests against a swept scenario key, one line per arm,
with the crossovers the sweep's text prints marked (`loadgen simulate --sweep`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from loadgen.report.figures import colors, figure, legend, save
from loadgen.scenario.sweep import Axis, crossovers, numeric, split_key


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
    """`sweep_figure` saved to `out_png`; returns the path."""
    return save(sweep_figure(sweep_rows, key), Path(out_png))


def sweep_figure(sweep_rows: Sequence[Mapping[str, Any]], key: str) -> Any:
    """Cost per 1000 ok requests (USD) against the swept scenario key, one line per arm
    (and per value of any other swept key): the matplotlib Figure, not saved.

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
    fig, axes = figure(10, 7 if has_warm else 4.5, 2 if has_warm else 1, 1, sharex=True, left=0.85,
                       bottom=0.6, top=0.4, hspace=0.08)
    color = colors(list(by_line))
    for label, pts in by_line.items():
        pts.sort(key=lambda p: p[0])
        pts = [p for p in pts if p[1].get("cost_per_1000") is not None]
        px = [x for x, _ in pts]
        axes[0].plot(px, [float(r["cost_per_1000"]) for _, r in pts], "o-", color=color[label], label=label)
        if has_warm:
            axes[1].plot(px, [float(r.get("warm_ratio") if r.get("warm_ratio") is not None else math.nan) * 100
                              for _, r in pts], "o-", color=color[label], label=label)
    for c in crossovers(sweep_rows, axes_) if numeric_axis else ():
        if c.key != key:
            continue
        est = numeric(c.estimate)
        cx = est[0] if est is not None else (pos[c.between[0]] + pos[c.between[1]]) / 2
        at = f" ({', '.join(f'{k}={v}' for k, v in c.fixed)})" if c.fixed else ""
        axes[0].axvline(cx, color="gray", linestyle=":", linewidth=1)
        axes[0].annotate(f" crossover {c.cheaper_below} / {c.cheaper_above}{at}\n {key}: between {c.between[0]}"
                         f" and {c.between[1]}, ~{c.estimate} by linear interpolation", (cx, 0.97),
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
    legend(axes[0], fontsize=9)
    if has_warm:
        axes[1].set_ylabel("warm ratio (%)")
        axes[1].set_ylim(0, 105)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel(key)
    return fig
