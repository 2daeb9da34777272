"""Text tables from a summary.json dict (never re-runs anything).

`summary_table` is the final block `loadgen run` prints: one row per arm.
"""

from __future__ import annotations

from typing import Any, Mapping


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.0f}ms"


def _pct(num: float, den: float) -> str:
    return "-" if not den else f"{100.0 * num / den:.1f}%"


def _row_values(name: str, arm: Mapping[str, Any]) -> list[str]:
    req = arm["requests"]
    cache = arm["cache"]
    lat = arm["latency_ms"]
    cost = arm["cost_usd"]
    warm_den = cache["warm"] + cache["cold"]
    return [
        name,
        str(req["sent"]),
        str(req["ok"]),
        _pct(req["throttled"], req["sent"]),
        str(req["error"] + req["timeout"]),
        str(req["retries"]),
        _pct(cache["warm"], warm_den),
        str(cache["cold"]),
        _ms(lat["ttft"].get("p50")),
        _ms(lat["ttft"].get("p99")),
        _ms(lat["e2e"].get("p50")),
        _ms(lat["e2e"].get("p99")),
        f"${cost['total']:.4f}",
        f"${cost['per_1000']:.2f}",
    ]


HEADERS = ["arm", "sent", "ok", "throttled", "err+to", "retries", "warm", "cold",
           "ttft p50", "ttft p99", "e2e p50", "e2e p99", "cost", "per 1000"]


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summary_table(summary: Mapping[str, Any]) -> str:
    """The per-arm summary block, with a header line of run facts."""
    rows = [_row_values(name, arm) for name, arm in summary["arms"].items()]
    facts = (f"{summary['scenario']}: target {summary['target']}, clock {summary['clock']}"
             + (f" x{summary.get('time_scale', 1):g}" if summary.get("clock") == "warp" else "")
             + f", {summary['scenario_s']:.0f} s scenario time in {summary['wall_s']:.1f} s wall"
             + (f", stopped: {summary['stopped']}" if summary.get("stopped") not in (None, "completed") else ""))
    lines = [facts, format_table(HEADERS, rows)]
    notes = []
    for name, arm in summary["arms"].items():
        mm = arm["cache"].get("mismatch", {})
        if mm.get("total"):
            notes.append(f"{name}: {mm['total']} request(s) where the cache state differed from loadgen's "
                         f"prediction ({', '.join(f'{k}: {v}' for k, v in mm.get('by_pair', {}).items())})"
                         + (f"; likely: {mm['likely_cause']}" if mm.get("likely_cause") else ""))
    if notes:
        lines.append("\n".join(notes))
    return "\n".join(lines)
