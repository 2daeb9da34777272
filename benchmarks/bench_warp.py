"""Warp clock: wall time of `loadgen run scenarios/slow-agent.toml` (two hours of scenario time).

Runs the command exactly as the README's first command does (the in-process emulator,
the scenario's own `time_scale`), unpinned, so it may use both cores. Baseline: the
scenario time it covers, so the ratio is the speed-up over real time. Target
(issue 5): under 60 s wall on 2 cores.

    python benchmarks/bench_warp.py [--scenario scenarios/slow-agent.toml] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

TARGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(C.REPO / "scenarios" / "slow-agent.toml"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"cores: {C.cores()}; loadgen run {a.scenario} (in-process emulator, scenario's time_scale)")
    for i in range(a.repeat):
        with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            out = subprocess.run([sys.executable, "-m", "loadgen", "run", a.scenario, "--quiet", "--out", d],
                                 capture_output=True, text=True, cwd=C.REPO, timeout=600)
            wall = time.monotonic() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if out.returncode != 0:
                raise SystemExit(f"loadgen run failed ({out.returncode}):\n{out.stderr[-3000:]}")
            s = json.loads(next(Path(d).iterdir()).joinpath("summary.json").read_text())
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            sent = sum(arm["requests"]["sent"] for arm in s["arms"].values())
            warm = {n: arm["cache"]["warm_ratio"] for n, arm in s["arms"].items()}
            print(f"  run {i + 1}: {wall:5.1f} s wall (incl. start-up; summary wall_s {s['wall_s']:.1f}), "
                  f"{cpu:4.1f} s CPU, {s['scenario_s']:.0f} s scenario ({s['clock']} x{s['time_scale']:g}): "
                  f"{s['scenario_s'] / wall:5.0f} x real time, {wall / TARGET_S:.2f} x the {TARGET_S:g} s target; "
                  f"{sent} attempts, warm ratio {warm}", flush=True)


if __name__ == "__main__":
    main()
