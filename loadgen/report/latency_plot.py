"""latency.png: latency against percentile per arm, on HdrHistogram's percentile axis.

The x axis is 1 / (1 - p) on a log scale, so 90 %, 99 %, 99.9 % are evenly spaced;
each line runs to the last percentile its count can resolve (1 - 1/n), then rises to
the max, marked with a triangle and given in the legend. One panel per metric: time to
first token, end to end, service time, schedule lag.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from loadgen.report.figures import figure, legend, save, styles
from loadgen.results.histograms import ALL_ATTEMPTS
from loadgen.scenario.units import format_ms

PANELS = ("ttft", "e2e", "service", "schedule_lag")   # latency.png's four panels
_TITLES = {"ttft": "time to first token (from intended start)", "e2e": "end to end (from intended start)",
           "service": "service time (from actual send)", "schedule_lag": "schedule lag (send - intended)"}


def percentile_label(x: float) -> str:
    """The percentile at x = 1 / (1 - p) as a tick label: "90%", "99.9%"."""
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


def latency_figure(hists: Mapping[str, Mapping[str, Any]], metrics: Sequence[str] = PANELS, *,
                   note: str | None = None) -> Any:
    """The latency_spectrum figure (matplotlib Figure), not saved; `note` (e.g. which arms
    are not drawn) goes under the percentile axis label.

    A ttft / e2e / service panel draws every attempt (`<metric>_all`, failed ones at the
    time they failed) when that histogram is given, with the failed count in the legend,
    and the ok-only line dotted beside it when some failed; else the ok-only line alone.
    """
    fig, axes = figure(11, 7.5, 2, 2, left=0.85, right=0.2, bottom=0.6, top=0.65, hspace=0.22, wspace=0.13)
    style = styles(list(hists))
    for ax, metric in zip(axes, metrics):
        top = 10.0
        worst: list[tuple[float, float, str]] = []   # (x, ms, colour): each line's max, marked together
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
            ax.plot(xs, ys, label=f"{arm} ({what}, max {format_ms(ys[-1])})", drawstyle="steps-post",
                    **style[arm])
            worst.append((xs[-1], ys[-1], style[arm]["color"]))
            if failed and n_ok:
                oxs, oys = spectrum_points(h_ok)
                ax.plot(oxs, oys, label=f"{arm}, ok only (n={n_ok})", drawstyle="steps-post",
                        color=style[arm]["color"], linestyle=":", linewidth=1.0)
        if worst:   # the worst request of each arm, where its line ends: one collection per panel
            ax.scatter([x for x, _, _ in worst], [y for _, y, _ in worst], c=[c for *_, c in worst],
                       marker="^", s=49, zorder=3)
        ax.set_xscale("log")
        ticks = [t for t in (1, 2, 10, 100, 1000, 10000, 100000, 1000000) if t <= top * 1.01]
        ax.set_xticks(ticks, [percentile_label(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(1, top * 1.5)   # room right of x = n, so the max marker is not on the frame
        ax.set_ylim(bottom=0)
        ax.set_title(_TITLES.get(metric, metric), fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            legend(ax, fontsize=8, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.suptitle("Latency by percentile, per arm, every attempt (failed ones at the time they failed)")
    # one label per axis for all four panels: each panel's own labels would be placed by
    # measuring every tick label again, a fifth of the figure's drawing time
    fig.supxlabel("percentile (triangle: max)" + (f"; {note}" if note else ""))
    fig.supylabel("ms")
    return fig


def latency_spectrum(hists: Mapping[str, Mapping[str, Any]], out_png: Path,
                     metrics: Sequence[str] = PANELS, *, note: str | None = None) -> Path:
    """Latency against percentile, one line per arm, one panel per metric, saved to `out_png`.

    `hists`: arm -> metric -> HdrHistogram (values in microseconds).
    """
    return save(latency_figure(hists, metrics, note=note), out_png)
