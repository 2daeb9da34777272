"""What per-interval outputs cost `loadgen simulate`: simulated attempts per wall second
with results files written, interval aggregation off (the baseline: every attempt still
goes to requests.jsonl and the whole-run Metrics) against on (the HDR interval logs every
run writes) and on with the `--output jsonl` stream too.

The cases alternate for `--rounds` rounds in this process on one core; each line is a
ratio against the baseline of the same round, and the spread over rounds is printed.
Uses bench_simulate.py's open-loop case (Poisson 50/s, streaming, quotas off).

  python benchmarks/bench_intervals.py [--duration 10m] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_simulate import open_scenario  # noqa: E402
from loadgen.api.outputs import OutputFlags, RunOutputs  # noqa: E402
from loadgen.api.session import RunState  # noqa: E402
from loadgen.api.setup import make_pricer  # noqa: E402
from loadgen.api.virtual import run_virtual  # noqa: E402
from loadgen.emulator.config import EmulatorConfig  # noqa: E402
from loadgen.engine.clock import VirtualClock  # noqa: E402
from loadgen.results.directory import ResultsDir  # noqa: E402
from loadgen.scenario.units import parse_duration  # noqa: E402

_RECORD = RunOutputs.record


def run_case(sc, mode: str) -> tuple[int, float]:
    """(attempts, wall s) for one simulation with interval outputs `mode`: off | hlog | jsonl."""
    RunOutputs.record = (lambda self, a, costs: None) if mode == "off" else _RECORD
    tmp = tempfile.mkdtemp(prefix="bench-intervals-")
    out = ResultsDir.create(tmp, sc.name, dt.datetime.now(dt.timezone.utc))
    state = RunState(sc, VirtualClock(), out, OutputFlags(jsonl="" if mode == "jsonl" else None))
    t0 = time.perf_counter()
    run_virtual(state, make_pricer(sc), EmulatorConfig.from_mapping(sc.emulator), signals=False)
    state.outputs.close(state.clock.now())
    wall = time.perf_counter() - t0
    out.close()
    RunOutputs.record = _RECORD
    return state.metrics.snapshot().total.sent, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="10m", help="scenario time of the open-loop case (default 10m)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sc = open_scenario(parse_duration(a.duration))
    ratios: dict[str, list[float]] = {"hlog": [], "jsonl": []}
    print(f"{'round':<6} {'case':<6} {'attempts':>9} {'wall s':>8} {'req/wall s':>11} {'x off':>7}")
    for r in range(1, a.rounds + 1):
        n, wall = run_case(sc, "off")
        base = n / wall
        print(f"{r:<6} {'off':<6} {n:>9} {wall:>8.2f} {base:>11,.0f} {1.0:>7.3f}")
        for mode in ("hlog", "jsonl"):
            n, wall = run_case(sc, mode)
            ratios[mode].append(n / wall / base)
            print(f"{r:<6} {mode:<6} {n:>9} {wall:>8.2f} {n / wall:>11,.0f} {n / wall / base:>7.3f}")
    for mode, xs in ratios.items():
        print(f"{mode}: median {statistics.median(xs):.3f} x off (min {min(xs):.3f}, max {max(xs):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
