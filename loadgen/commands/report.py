"""`loadgen report DIR`: re-read a results directory and print its tables, thresholds and
(unless --no-plots) write its plots and report.html."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadgen.commands.machine import junit_problem, write_junit_or_say
from loadgen.commands.output import write_stdout
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_OK, EXIT_THRESHOLD
from loadgen.report.artifacts import write_artifacts
from loadgen.report.render import report_dict, report_text
from loadgen.report.verdicts import check_thresholds
from loadgen.report.view import load_view


def cmd_report(args: argparse.Namespace) -> int:
    problem = junit_problem(getattr(args, "junit", None))
    if problem:
        print(f"loadgen report: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        view = load_view(args.dir)
    except (ValueError, OSError) as e:   # FileNotFoundError included; messages name the path
        print(f"loadgen report: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = check_thresholds(view)
    written: list[Path] = []
    html = None
    if not args.no_plots:
        written, html, warnings = write_artifacts(view, results)
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
    if args.format == "json":
        write_stdout(json.dumps(report_dict(view, results, written), indent=2, default=str))
    else:
        write_stdout(report_text(view, results)
                     + (f"\n\nreport: {html}  plots: {view.path / 'plots'}" if html is not None else ""))
    code = EXIT_THRESHOLD if any(r.failed for r in results) else EXIT_OK
    junit = getattr(args, "junit", None)
    suite = (str(view.summary.get("scenario") or view.path.name), results, float(view.summary.get("wall_s") or 0.0))
    if not write_junit_or_say(junit, [suite], lambda m: print(f"loadgen report: {m}", file=sys.stderr)):
        return code if code != EXIT_OK else EXIT_BAD_INPUT
    return code
