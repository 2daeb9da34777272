"""How much faster a sweep runs on 2 workers: `loadgen.simulate(sweep=...)` serial vs
`workers=2` vs `cluster="ray"` (a local Ray with 2 CPUs), the same sweep, in one run.

The sweep: an open-loop scenario (Poisson 20/s for 5 minutes, 5000-token cached prefix,
streaming) over 4 seeds (`--sweep seed=1,2,3,4`): 4 points of equal work, each a full
results directory with plots and report.html, as `loadgen simulate --sweep` writes them.
Each round runs serial, then 2 workers (the ratio is against the serial run of the same
round, and each case's CPU seconds per wall second show what the machine gave it); then a local Ray is started once (its start-up is timed and printed apart) and
the Ray rounds run (ratio against the median serial time). A warm-up point first, so no
case pays matplotlib's first import. The results are checked equal to the serial ones.

  python benchmarks/bench_sweep.py [--rounds 3] [--points 4] [--duration 5m] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import loadgen  # noqa: E402
from parallel_results import comparable  # noqa: E402

SCENARIO = """
name = "sweep-bench"
seed = 1
duration = "{duration}"

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 300
stream = true

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 20
output_tokens = {{ dist = "lognormal", median = 150, p90 = 400 }}

[arrivals]
kind = "poisson"
rate = "20/s"

[emulator]
latency = "fast"

[emulator.quotas]
tpm = 0

[[arms]]
name = "cached"
cache_ttl = "5m"
profile = "region"
"""


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the pool's workers, once closed)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


LAST_CPU = [0.0]


def one(sc: Path, out: Path, points: int, **where) -> tuple[float, Path]:
    t0, c0 = time.perf_counter(), _cpu()
    res = loadgen.simulate(str(sc), out=str(out), sweep={"seed": [str(i + 1) for i in range(points)]},
                           signals=False, **where)
    wall = time.perf_counter() - t0
    LAST_CPU[0] = _cpu() - c0
    assert res.exit_code == 0, res.summary.get("exit_code")
    return wall, res.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--duration", default="5m")
    ap.add_argument("--no-ray", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    sc = tmp / "sweep-bench.toml"
    sc.write_text(SCENARIO.format(duration=a.duration))
    print(f"loadgen {loadgen.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()}")
    one(sc, tmp / "warm", 1)  # imports matplotlib & co. once, before any case is timed

    serial, two = [], []
    reference = None
    for r in range(a.rounds):
        s, p1 = one(sc, tmp / f"s{r}", a.points)
        s_cpu = LAST_CPU[0]
        w, p2 = one(sc, tmp / f"w{r}", a.points, workers=2)
        w_cpu = LAST_CPU[0]
        reference = reference or comparable(p1, "sweep.json")
        assert comparable(p2, "sweep.json") == reference, "2-worker sweep differs from the serial one"
        serial.append(s)
        two.append(w)
        # CPU per wall second: what the machine gave each case (2.0 = both cores busy)
        print(f"round {r + 1}: serial {s:6.2f} s ({s_cpu / s:.2f} CPU)   workers=2 {w:6.2f} s ({w_cpu / w:.2f} CPU)   "
              f"x{s / w:.2f}   (load average {os.getloadavg()[0]:.2f})", flush=True)
    ratios = [s / w for s, w in zip(serial, two)]
    print(f"workers=2: x{statistics.median(ratios):.2f} median, x{min(ratios):.2f}-x{max(ratios):.2f} "
          f"over {a.rounds} rounds ({a.points} points of {a.duration})")

    if a.no_ray:
        return
    import ray  # deferred: only when the Ray case runs (optional extra)

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    print(f"local Ray started in {time.perf_counter() - t0:.2f} s (not in the times below)")
    base = statistics.median(serial)
    try:
        rays = []
        for r in range(a.rounds):
            w, p = one(sc, tmp / f"r{r}", a.points, cluster="ray")
            assert comparable(p, "sweep.json") == reference, "Ray sweep differs from the serial one"
            rays.append(w)
            print(f"round {r + 1}: cluster=ray {w:6.2f} s   x{base / w:.2f} vs median serial   "
                  f"(load average {os.getloadavg()[0]:.2f})", flush=True)
        print(f"cluster=ray (2 CPUs): x{base / statistics.median(rays):.2f} median vs serial "
              f"{base:.2f} s; {json.dumps([round(x, 2) for x in rays])}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
