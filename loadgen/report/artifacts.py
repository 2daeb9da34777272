"""What a run leaves for people at its end: DIR/plots/*.png, DIR/report.html and the
threshold verdicts.

`run_artifacts` is what `run` / `simulate` call when a run ends (it prints nothing);
`announce` prints what it did; `after_run` does both and returns the exit code.
`write_artifacts` is the part `loadgen report` shares: a plot that fails is a warning,
not a lost run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from loadgen.exit_codes import EXIT_OK, EXIT_THRESHOLD
from loadgen.report import html as html_report
from loadgen.report import plots
from loadgen.report.detail import detail_tables
from loadgen.report.verdicts import check_thresholds
from loadgen.report.view import RunView, burndown_of, load_view
from loadgen.results.directory import load_attempts
from loadgen.scenario.thresholds import format_results


def write_artifacts(view: RunView, results: Sequence[Any]) -> tuple[list[Path], Path | None, list[str]]:
    """DIR/plots/*.png and DIR/report.html; (plots, html, warnings). A plot that fails
    is a warning, not a lost run."""
    warnings: list[str] = []
    written: list[Path] = []
    try:
        # the attempts are already folded (view.series); the file is read again only to
        # rebuild latency for a directory that lost its histograms/
        written = plots.write_plots(view.path, view.summary, load_attempts(view.path) if view.attempts_read else (),
                                    run_series=view.series, quotas=view.quotas, burndown=burndown_of,
                                    histograms=view.histograms)
    except Exception as e:  # noqa: BLE001 - matplotlib errors are many; the tables still stand
        warnings.append(f"plots not written: {type(e).__name__}: {e}")
    html = None
    try:
        html = html_report.write(view, results, detail_tables(view), written)
    except OSError as e:
        warnings.append(f"{html_report.REPORT_HTML} not written: {e}")
    return written, html, warnings


def run_artifacts(results_dir: Path, summary: dict, scenario: Any) -> tuple[list, Path | None, list[str]]:
    """Plots, report.html and the threshold verdicts of a run just finished, printing nothing:
    (thresholds.Result list, report.html path or None, warnings)."""
    view = load_view(results_dir, summary=summary, scenario=scenario)
    results = check_thresholds(view)
    _, html, warnings = write_artifacts(view, results)
    return results, html, warnings


def announce(results: Sequence[Any], html: Path | None, warnings: Sequence[str], *, quiet: bool = False) -> None:
    """Print what `run_artifacts` did: warnings on stderr always; the threshold lines and the
    report path on stdout unless `quiet`."""
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr, flush=True)
    if quiet:
        return
    if results:
        print("thresholds:\n" + format_results(results), flush=True)
    if html is not None:
        print(f"report: {html}", flush=True)


def after_run(results_dir: Path, summary: dict, scenario: Any) -> int:
    """End of `loadgen run` / `simulate`: write plots and report.html, print the thresholds.

    Returns 1 (EXIT_THRESHOLD) if any threshold failed, else 0.
    """
    results, html, warnings = run_artifacts(results_dir, summary, scenario)
    announce(results, html, warnings)
    return EXIT_THRESHOLD if any(r.failed for r in results) else EXIT_OK
