"""The whole report of one run, as `loadgen report` prints it (`report_text`) or as a
JSON-ready dict (`report_dict`, `loadgen report --json`): the summary table, per-arm
detail, arms compared with the first, the threshold verdicts and the notes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from loadgen.report.compare import compare, compare_text
from loadgen.report.detail import detail_tables
from loadgen.report.summary_table import summary_table
from loadgen.report.view import RunView
from loadgen.scenario.thresholds import format_results


def report_text(view: RunView, results: Sequence[Any]) -> str:
    """The report as text; `results`: thresholds.Result list (`verdicts.check_thresholds`)."""
    parts = [summary_table(view.summary)]
    if view.summary.get("rebuilt"):
        parts.insert(0, "REBUILT: " + view.notes[0])   # before any figure: this run did not finish
    parts += [t.text() for t in detail_tables(view)]
    if len(view.summary.get("arms", {})) > 1:
        parts.append("Arms compared with the first\n" + compare_text([compare(list(view.summary["arms"].items()))]))
    if results:
        parts.append("Thresholds\n" + format_results(results))
    parts += list(view.notes[1:] if view.summary.get("rebuilt") else view.notes)
    return "\n\n".join(parts)


def report_dict(view: RunView, results: Sequence[Any], plots: Sequence[Path] = ()) -> dict:
    """The report as a dict of plain values (summary.json's figures among them)."""
    arms = view.summary.get("arms", {})
    return {
        "results_dir": str(view.path),
        "rebuilt": bool(view.summary.get("rebuilt")),   # summary rebuilt from requests.jsonl (killed run)
        "summary": view.summary,
        "quota": {name: ({"tpm": q[0], "rpm": q[1]} if q is not None else None) for name, q in view.quotas.items()},
        "tpm_peak_burndown": view.peaks_burndown,
        "compare": compare(list(arms.items())).to_dict() if arms else None,
        "thresholds": [r.to_dict() for r in results],
        "thresholds_failed": sum(r.failed for r in results),
        "plots": [str(p) for p in plots],
        "notes": list(view.notes),
    }
