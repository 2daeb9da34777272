"""The price catalog as the text table `loadgen pricing` prints: one row per model,
profile kind and service tier, USD per 1M tokens, sources as numbered footnotes."""

from __future__ import annotations

from loadgen.catalog.pricing import PriceTable
from loadgen.catalog.profiles import KINDS


def _fmt_money(v: float) -> str:
    """Cents always shown; more decimals only when the price has them (Nova: 0.035)."""
    s = f"{v:.6f}".rstrip("0")
    return s + "0" * max(0, 2 - len(s.split(".")[1]))


def render(table: PriceTable) -> str:
    """The catalog as a text table, sources as numbered footnotes."""
    sources: list[str] = []

    def ref(src: str) -> str:
        if src not in sources:
            sources.append(src)
        return f"[{sources.index(src) + 1}]"

    head = ("model", "profile", "$/1M in", "$/1M out", "read x", "write 5m x", "write 1h x",
            "batch x", "verified", "source")
    lines: list[tuple[str, ...]] = []
    order = {k: i for i, k in enumerate(KINDS)}
    for (mid, kind) in sorted(table.rows, key=lambda r: (r[0], order[r[1]])):
        base, fam = table.rows[(mid, kind)], table.families[table.model_family[mid]]
        w5m, w1h = fam.cache_write.get("5m"), fam.cache_write.get("1h")
        # the standard row, then its service tiers as "<kind> <tier>"
        for label, row in ((kind, base), *((f"{kind} {t}", r) for t, r in base.tiers.items())):
            lines.append((
                mid, label, _fmt_money(row.input_per_mtok), _fmt_money(row.output_per_mtok),
                f"{fam.cache_read:g}" if fam.cache_write else "-", "-" if w5m is None else f"{w5m:g}",
                "-" if w1h is None else f"{w1h:g}", f"{fam.batch:g}",
                "override" if row.overridden else ("yes" if row.verified and fam.verified else "no"),
                ref(row.source),
            ))
    widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
    numeric = {2, 3, 4, 5, 6, 7}

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    out = [f"Price catalog as of {table.as_of.isoformat()} ({table.path}); USD per 1M tokens,",
           "cache and batch prices as multiples of the input price.", "",
           fmt(head), fmt(tuple("-" * w for w in widths)), *map(fmt, lines), "", "Sources:"]
    out += [f"  [{i + 1}] {s}" for i, s in enumerate(sources)]
    notes = [f"  {f.name}: {f.note}" for f in table.families.values() if f.note]
    if notes:
        out += ["", "Family notes:", *notes]
    return "\n".join(out) + "\n"
