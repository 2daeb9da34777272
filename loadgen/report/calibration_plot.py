"""calibration.png: observed against fitted time to first token and end-to-end time, one
point per attempt the fit used, with the line where they are equal. Points above the line
were slower than the fitted model's median; a good fit scatters them evenly around it."""

from __future__ import annotations

import math
from pathlib import Path

from loadgen.report.figures import figure, legend, save
from loadgen.results.calibration import Calibration

MAX_POINTS = 20_000   # drawn per panel; a larger run is thinned evenly (every k-th attempt)


def calibration_plot(cal: Calibration, out_png: Path) -> Path:
    """Write the two panels (TTFT, end to end; seconds) of `cal` to `out_png`."""
    fig, (ttft_ax, e2e_ax) = figure(11.0, 5.0, 1, 2, wspace=0.25, top=0.7)
    step = max(1, math.ceil(len(cal.points) / MAX_POINTS))
    points = cal.points[::step]
    drawn = f", every {step}th drawn" if step > 1 else ""
    fig.suptitle(f"loadgen calibrate: {cal.model} (observed vs fitted median, {cal.used} attempts{drawn})")
    panels = ((ttft_ax, 0, 1, "time to first token", cal.ttft), (e2e_ax, 2, 3, "end to end", cal.e2e))
    for ax, i_obs, i_fit, title, q in panels:
        fitted = [p[i_fit] for p in points]
        observed = [p[i_obs] for p in points]
        ax.scatter(fitted, observed, s=6, alpha=0.4, color="#1f77b4", linewidths=0, label="attempt")
        top = max(fitted + observed, default=1.0) * 1.05
        ax.plot([0, top], [0, top], color="#d62728", linewidth=1.2, label="observed = fitted")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel(f"fitted {title} (s)")
        ax.set_ylabel(f"observed {title} (s)")
        r2 = f"{q.r2:.3f}" if q.r2 == q.r2 else "n/a"
        ax.set_title(f"{title}: R^2 = {r2}, n = {q.n}", fontsize=10)
        ax.grid(True, alpha=0.3)
        legend(ax, loc="upper left", fontsize=8)
    return save(fig, out_png)
