"""What every loadgen plot shares: figure set-up, saving, colours and line styles per arm.

matplotlib's object API (Figure + Agg canvas) is used, never pyplot: no display, no
global backend switch, and the import (~0.7 s of CPU) happens only when a plot is drawn.

Margins are fixed, in inches, rather than computed by a layout engine: constrained
layout measured every tick label and drew each figure twice, which was most of the time
a run spent on its plots. Legends sit inside the axes, so only tick labels and axis
labels need the margins, and their sizes are known (10 pt text, at most ~7 characters
of tick label: matplotlib switches to an offset "1e6" above a million).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

DPI = 100
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_DASHES = ("-", (0, (5, 2)), (0, (2, 2)), (0, (6, 2, 1, 2)))


def figure(w: float, h: float, nrows: int = 1, ncols: int = 1, *, left: float = 0.85, right: float = 0.2,
           bottom: float = 0.6, top: float = 0.4, hspace: float = 0.2, wspace: float = 0.2,
           **kw: Any) -> tuple[Any, list[Any]]:
    """(Figure, its axes in reading order): `w` x `h` inches; margins in inches from
    each edge (left of the leftmost axes, and so on); `hspace` / `wspace` between axes as a
    fraction of the average axes height / width; `kw` to Figure.subplots (sharex ...)."""
    from matplotlib.figure import Figure  # deferred: matplotlib takes ~0.7 s to import, only plots need it

    fig = Figure(figsize=(w, h), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={
        "left": left / w, "right": 1 - right / w, "bottom": bottom / h, "top": 1 - top / h,
        "hspace": hspace, "wspace": wspace}, **kw)
    return fig, [ax for row in axes for ax in row]


def save(fig: Any, out_png: Path) -> Path:
    """Write `fig` as PNG to `out_png` (its folder made if needed); returns the path."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    # zlib level 1, not PIL's 6: plots are flat colour, so the file grows ~3 % while the
    # encoding takes a fraction of the time. Rename: a reader never sees half a PNG.
    fig.savefig(tmp, format="png", pil_kwargs={"compress_level": 1})
    tmp.replace(out_png)
    return out_png


def colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per name, in order, cycling through PALETTE."""
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Colour, dash and width per arm: arms often coincide (same arrivals, same prompts), and
    a later arm must not hide an earlier one, so later ones are thinner and dashed."""
    c = colors(names)
    return {n: {"color": c[n], "linestyle": _DASHES[i % len(_DASHES)], "linewidth": max(1.0, 2.4 - 0.5 * i)}
            for i, n in enumerate(names)}


def legend(ax: Any, **kw: Any) -> None:
    """A legend only when something on `ax` has a label: matplotlib warns "No artists with
    labels found to put in legend" otherwise (an empty run)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)
