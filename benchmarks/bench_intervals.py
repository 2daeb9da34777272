"""What per-interval outputs cost `loadgen simulate`: simulated attempts per CPU second
(of this process) with results files written, interval aggregation off (the baseline:
every attempt still goes to requests.jsonl and straight into the whole-run Metrics)
against on (the HDR interval logs every run writes; the whole-run Metrics is then built
from the intervals) and on with the `--output jsonl` stream too.

The cases alternate for `--rounds` rounds in this process on one core; each line is a
ratio against the baseline of the same round (by CPU time: on a shared machine it moves
less than wall time), and the spread over rounds is printed.
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
from loadgen.api.outputs import OutputFlags  # noqa: E402
from loadgen.api.session import RunState  # noqa: E402
from loadgen.api.setup import make_pricer  # noqa: E402
from loadgen.api.virtual import run_virtual  # noqa: E402
from loadgen.emulator.config import EmulatorConfig  # noqa: E402
from loadgen.engine.clock import VirtualClock  # noqa: E402
from loadgen.results.directory import ResultsDir  # noqa: E402
from loadgen.scenario.units import parse_duration  # noqa: E402

def run_case(sc, mode: str) -> tuple[int, float, float]:
    """(attempts, wall s, CPU s) for one simulation with interval outputs `mode`: off | hlog | jsonl."""
    tmp = tempfile.mkdtemp(prefix="bench-intervals-")
    out = ResultsDir.create(tmp, sc.name, dt.datetime.now(dt.timezone.utc))
    state = RunState(sc, VirtualClock(), out, OutputFlags(jsonl="" if mode == "jsonl" else None))
    if mode == "off":  # as a run split over workers does: no aggregator, the sink records into state.metrics
        state.outputs.close(0.0)
        state.outputs = None
    t0, c0 = time.perf_counter(), time.process_time()
    run_virtual(state, make_pricer(sc), EmulatorConfig.from_mapping(sc.emulator), signals=False)
    if state.outputs is not None:
        state.outputs.close(state.clock.now())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out.close()
    return state.metrics.snapshot().total.sent, wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", default="10m", help="scenario time of the open-loop case (default 10m)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    sc = open_scenario(parse_duration(a.duration))
    ratios: dict[str, list[float]] = {"hlog": [], "jsonl": []}
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores; ratios by CPU s")
    print(f"{'round':<6} {'case':<6} {'attempts':>9} {'wall s':>8} {'req/wall s':>11} {'CPU s':>7} "
          f"{'req/CPU s':>10} {'x off':>7}")
    for r in range(1, a.rounds + 1):
        base = 0.0
        for mode in ("off", "hlog", "jsonl"):
            n, wall, cpu = run_case(sc, mode)
            base = base or n / cpu
            if mode != "off":
                ratios[mode].append(n / cpu / base)
            print(f"{r:<6} {mode:<6} {n:>9} {wall:>8.2f} {n / wall:>11,.0f} {cpu:>7.2f} {n / cpu:>10,.0f} "
                  f"{n / cpu / base:>7.3f}")
    for mode, xs in ratios.items():
        print(f"{mode}: median {statistics.median(xs):.3f} x off (min {min(xs):.3f}, max {max(xs):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
