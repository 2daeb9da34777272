"""The headline block of a run: one row per arm, under a line of run facts.

`loadgen run` and `simulate` print it at the end, `loadgen report` first, and report.html
shows the same rows. Latency here counts every attempt (failed ones at the time they
failed), as the thresholds measure it; `failure_notes` gives the ok-only figures beside it.
"""

from __future__ import annotations

from typing import Any, Mapping

from loadgen.report.batch_table import batch_table
from loadgen.report.table import format_table, ms, pct
from loadgen.scenario.thresholds import INTERRUPTED, latency_over_all

HEADERS = ["arm", "sent", "ok", "throttled", "err+to", "retries", "warm", "cold",
           "ttft p50", "ttft p99", "e2e p50", "e2e p99", "cost", "per 1000"]


def row_values(name: str, arm: Mapping[str, Any]) -> list[str]:
    """The HEADERS cells of one summary.json arm."""
    req = arm["requests"]
    cache = arm["cache"]
    cost = arm["cost_usd"]
    warm_den = cache["warm"] + cache["cold"]
    # latency over every attempt (failed ones at the time they failed), as the thresholds
    # measure it; "-" for a summary that has only ok-only figures while attempts failed
    ttft = latency_over_all(arm, "ttft") or {}
    e2e = latency_over_all(arm, "e2e") or {}
    return [
        name,
        str(req["sent"]),
        str(req["ok"]),
        pct(req["throttled"], req["sent"]),
        str(req["error"] + req["timeout"]),
        str(req["retries"]),
        pct(cache["warm"], warm_den),
        str(cache["cold"]),
        ms(ttft.get("p50")),
        ms(ttft.get("p99")),
        ms(e2e.get("p50")),
        ms(e2e.get("p99")),
        f"${cost['total']:.4f}",
        f"${cost['per_1000']:.2f}",
    ]


def failure_notes(summary: Mapping[str, Any]) -> list[str]:
    """One line per arm whose attempts did not all succeed, read beside the table's latency:
    how many failed, how, and the ok-only figures (the table's latency counts every attempt)."""
    notes = []
    for name, arm in summary["arms"].items():
        req = arm["requests"]
        failed = req["sent"] - req["ok"]
        if failed <= 0:
            continue
        how = ", ".join(f"{req[k]} {k}" for k in ("throttled", "error", "timeout") if req.get(k))
        lat = arm.get("latency_ms", {})
        ok_ttft, ok_e2e = lat.get("ttft") or {}, lat.get("e2e") or {}
        cut = int((arm.get("errors") or {}).get(INTERRUPTED, 0))
        by_user = f", {cut} of them cut short by the interrupt (not the target)" if cut else ""
        notes.append(f"{name}: {failed} of {req['sent']} attempts failed ({how}{by_user}); the latency above counts "
                     f"them at the time they failed (a timeout at its deadline); ok only: ttft p50 {ms(ok_ttft.get('p50'))} "
                     f"p99 {ms(ok_ttft.get('p99'))}, e2e p50 {ms(ok_e2e.get('p50'))} p99 {ms(ok_e2e.get('p99'))}")
    return notes


def summary_table(summary: Mapping[str, Any]) -> str:
    """The per-arm summary block, with a header line of run facts."""
    rows = [row_values(name, arm) for name, arm in summary["arms"].items()]
    facts = (f"{summary.get('scenario', '?')}: target {summary.get('target', '?')}, clock {summary.get('clock', '?')}"
             + (f" x{summary.get('time_scale') or 1:g}" if summary.get("clock") in ("warp", "scaled") else "")
             + (" (as scenario.toml sets it; no run.json)" if summary.get("clock_source") == "scenario.toml" else "")
             + f", {summary.get('scenario_s') or 0:.0f} s scenario time in {summary.get('wall_s') or 0:.1f} s wall"
             + (f", stopped: {summary['stopped']}" if summary.get("stopped") not in (None, "completed") else ""))
    lines = [facts, format_table(HEADERS, rows)]
    batch = batch_table(summary)
    if batch:
        lines.append(batch)
    notes = failure_notes(summary)
    for name, arm in summary["arms"].items():
        mm = arm["cache"].get("mismatch", {})
        if mm.get("total"):
            notes.append(f"{name}: {mm['total']} request(s) where the cache state differed from loadgen's "
                         f"prediction ({', '.join(f'{k}: {v}' for k, v in mm.get('by_pair', {}).items())})"
                         + "".join(f"; {pair}: likely {cause}" for pair, cause in mm.get("likely_cause", {}).items()
                                   if cause))
    if notes:
        lines.append("\n".join(notes))
    return "\n".join(lines)
