"""`loadgen calibrate DIR`: fit the emulator's latency model to a run's requests.jsonl and
print (or, with --out, write) the `[emulator.latency]` table, plus calibration.png. With
`--format json` stdout holds one document (api/documents.py) with the table in it."""

from __future__ import annotations

import argparse
import sys

from loadgen.api.calibrate import calibrate
from loadgen.api.documents import calibrate_document
from loadgen.api.setup import InputError
from loadgen.commands.machine import emit_json
from loadgen.commands.output import write_stdout
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    try:
        r = calibrate(args.dir, model=args.model, out=args.out, overwrite=args.force,
                      keep_defaults=args.keep_defaults, plot=not args.no_plot)
    except InputError as e:
        for line in str(e).splitlines():
            print(f"loadgen calibrate: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.format == "json":
        emit_json(calibrate_document(r))  # the table is in it: stdout holds the document only
    elif r.out is None:
        write_stdout(r.toml.rstrip("\n"))
    cal = r.calibration
    kept = [k for k, _ in cal.unidentified]
    print(f"calibrated {cal.model} from {cal.used} attempts: time to first token R^2 {cal.ttft.r2:.3f}, "
          f"end to end R^2 {cal.e2e.r2:.3f}" + (f"; defaults kept for {', '.join(kept)}" if kept else ""),
          file=sys.stderr)
    if r.out is not None:
        print(f"table: {r.out}  (loadgen emulator --config {r.out}, or paste it into a scenario)", file=sys.stderr)
    if r.plot is not None:
        print(f"plot: {r.plot}", file=sys.stderr)
    return EXIT_OK
