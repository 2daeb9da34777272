"""Aligned text tables and the cell formats every report table shares.

A `Table` holds already formatted cells, so the same figures print as text here and as
HTML in report.html (`loadgen.report.html`). Cells: "850ms" / "1.62s", "12.3%",
"1,234", "$0.8893"; "-" for no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadgen.catalog.pricing import format_usd
from loadgen.scenario.units import format_ms


def ms(v: float | None) -> str:
    """A latency cell in milliseconds: "850ms", "1.62s", "-" for no data."""
    return "-" if v is None else format_ms(v, sep="")


def pct(num: float, den: float) -> str:
    """num / den as a percentage cell, "-" when den is 0."""
    return "-" if not den else f"{100.0 * num / den:.1f}%"


def count(v: Any) -> str:
    """A count cell with thousands separators ("1,234"); floats rounded; "-" for None."""
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.0f}"


def usd(v: float | None) -> str:
    """A USD cell ("$0.8893", "$12.50"), "-" for no data."""
    return "-" if v is None else format_usd(v)


def format_table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Aligned text table: the first `left` columns (labels) left-aligned, the rest (figures) right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells, rendered as text or HTML."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    left: int = 1               # label columns (left-aligned)

    def text(self) -> str:
        body = format_table(list(self.headers), [list(r) for r in self.rows], self.left)
        return "\n".join([self.title, body] + ([self.note] if self.note else []))
