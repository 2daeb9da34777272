"""`loadgen compare DIR...`: arms of one run, or the same arms across runs, side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadgen.commands.output import write_stdout
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_OK
from loadgen.report.compare import compare, compare_text, groups_for, scenario_note, scenarios_of, unrelated_message
from loadgen.report.view import read_summary


def run_label(path: Path, taken: set[str]) -> str:
    """A short, unique label for a results directory: its folder name."""
    label = path.name or str(path)
    n = 2
    base = label
    while label in taken:
        label, n = f"{base}#{n}", n + 1
    taken.add(label)
    return label


def cmd_compare(args: argparse.Namespace) -> int:
    runs = []
    dirs: list[str] = []
    notes: list[str] = []
    taken: set[str] = set()
    for d in args.dirs:
        p = Path(d)
        if not p.is_dir():
            # `compare results/*` also matches files (sweep.csv, a PNG): not runs, skip them
            print(f"loadgen compare: skipping {d}: not a directory", file=sys.stderr)
            continue
        try:
            summary, note = read_summary(p, "compare")  # a killed run: rebuilt, as `report` does
        except (OSError, ValueError) as e:
            print(f"loadgen compare: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        label = run_label(p.resolve(), taken)
        runs.append((label, summary))
        dirs.append(d)
        if note:
            notes.append(f"REBUILT {label}: {note}")
    if not runs:
        print("loadgen compare: none of the arguments is a directory; expected loadgen results directories",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    groups = [g for g in groups_for(runs) if g]
    if not groups:
        msg = unrelated_message(runs) if len(scenarios_of(runs)) > 1 and any(s.get("arms") for _, s in runs) \
            else "the results have no arms to compare"
        print(f"loadgen compare: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    mixed = scenario_note(runs)
    if mixed:
        notes.insert(0, f"note: {mixed}")
    comparisons = [compare(g) for g in groups]
    if args.format == "json":
        write_stdout(json.dumps({"runs": [{"label": lab, "dir": str(d), "scenario": s.get("scenario"),
                                           "rebuilt": bool(s.get("rebuilt"))} for (lab, s), d in zip(runs, dirs)],
                                 "notes": notes,
                                 "comparisons": [c.to_dict() for c in comparisons]}, indent=2))
    else:
        write_stdout("\n".join([*notes, ""] if notes else []) + compare_text(comparisons))
    return EXIT_OK
