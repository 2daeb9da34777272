"""Open-loop throughput ceiling of `loadgen run --workers 1` vs `--workers 2` (and more).

Each case runs the real CLI (`python -m loadgen run`) on one open-loop scenario whose
constant rate is far above what the machine can send (so the generator runs flat out,
behind its schedule) until `--max-requests`, `max_in_flight` per arm per worker, the emulator on "fast"
latency with quotas and Region capacity off. The ceiling is the attempts sent divided
by the wall span between the first and the last send (`wall_start` in requests.jsonl),
so process start-up and the end-of-run report are not counted.

  builtin   (default) the built-in emulator as a user runs it: in the generator's own
            process with --workers 1, in one process of its own with --workers N > 1
  endpoint  a separate `loadgen emulator` process for every case (`--endpoint-url`):
            the same target for 1 and N workers, on the real clock

The cases alternate (1, N, 1, N, ...) `--repeat` times; the best of each is compared and
the spread printed, with the load average (the machine may be shared).

`--cluster ray` compares N local worker processes with N Ray actors instead (`run
--workers N` against `run --workers N --cluster ray`, alternating): the benchmark starts
one local Ray with N CPUs, every Ray case joins it (RAY_ADDRESS), so Ray's start-up is
not counted, and the benchmark stops it at the end.

    python benchmarks/bench_workers.py [--workers 2] [--requests 8000] [--repeat 2] [--mode builtin|endpoint]
                                       [--cluster ray]

Loopback only; dummy credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SCENARIO = """\
name = "bench-workers"
seed = 1
duration = "{duration}s"

[target]
region = "{region}"
max_in_flight = {in_flight}
time_scale = 1

[model]
id = "{model}"
max_tokens = 256
stream = false

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = 12
output_tokens = 16

[arrivals]
kind = "constant"
rate = "{rate}/s"

[[arms]]
name = "a"

{emulator}
"""


def ceiling(workers: int, a: argparse.Namespace, work: Path, url: str | None, ray_address: str | None = None) -> dict:
    """One `loadgen run` case: attempts, wall span of the sends, requests/s (`ray_address`:
    the segments as actors of that Ray, `--cluster ray`)."""
    sc = work / "bench.toml"
    sc.write_text(SCENARIO.format(duration=max(60, 2 * a.requests / a.rate), region=C.REGION, in_flight=a.concurrency, model=C.MODEL_ID,
                                  rate=a.rate, emulator=C.EMULATOR_CONFIG if url is None else ""))
    out = work / f"res-{workers}-{len(list(work.glob('res-*')))}"
    cmd = [sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--quiet", "--workers", str(workers),
           "--max-requests", str(a.requests)]
    if url is not None:
        cmd += ["--endpoint-url", url]
    env = {**os.environ, **C.CHILD_ENV}
    if ray_address is not None:
        cmd += ["--cluster", "ray"]
        env["RAY_ADDRESS"] = ray_address
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=C.REPO, timeout=600)
    if p.returncode not in (0, 1):  # 1: a threshold (none here) or behind schedule is expected
        raise RuntimeError(f"loadgen run --workers {workers} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    (d,) = list(out.iterdir())
    walls = []
    with open(d / "requests.jsonl") as f:
        for line in f:
            walls.append(json.loads(line)["wall_start"])
    span = max(walls) - min(walls)
    return {"workers": workers, "attempts": len(walls), "span_s": span, "rps": len(walls) / span if span else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="the split case (default 2)")
    ap.add_argument("--requests", type=int, default=8000, help="requests per case (--max-requests)")
    ap.add_argument("--rate", type=float, default=8000.0, help="intended requests/s: far above the ceiling")
    ap.add_argument("--concurrency", type=int, default=64, help="max_in_flight per worker")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--mode", choices=["builtin", "endpoint"], default="builtin")
    ap.add_argument("--cluster", choices=["ray"], help="compare N local workers with N Ray actors instead")
    a = ap.parse_args()
    ray = None
    if a.cluster:
        import ray  # deferred: only the --cluster case needs Ray (an optional extra)

        ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address if ray is not None else None
    # (label, workers, Ray address): the baseline first, then the case it is compared with
    cases = ([(f"--workers {a.workers}", a.workers, None), (f"--workers {a.workers} --cluster ray", a.workers, address)]
             if a.cluster else [("--workers 1", 1, None), (f"--workers {a.workers}", a.workers, None)])
    load0 = os.getloadavg()
    rounds: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    try:
        with tempfile.TemporaryDirectory(prefix="loadgen-bench-workers-") as tmp:
            work = Path(tmp)
            for _ in range(a.repeat):
                for label, n, ray_address in cases:
                    if a.mode == "endpoint":
                        with C.emulator(core=0) as url:
                            r = ceiling(n, a, work, url, ray_address)
                    else:
                        r = ceiling(n, a, work, None, ray_address)
                    rounds[label].append(r)
                    print(f"  {label}: {r['attempts']} attempts in {r['span_s']:.2f} s = {r['rps']:.0f} req/s",
                          flush=True)
    finally:
        if ray is not None:
            ray.shutdown()
    load1 = os.getloadavg()
    best = {k: max(r["rps"] for r in rs) for k, rs in rounds.items()}
    spread = {k: (min(r["rps"] for r in rs), max(r["rps"] for r in rs)) for k, rs in rounds.items()}
    (base, _, _), (case, _, _) = cases
    lines = [f"mode {a.mode}, {C.cores()} cores, load average {load0[0]:.2f} before, {load1[0]:.2f} after"]
    lines += [f"{k}: best {best[k]:.0f} req/s (spread {spread[k][0]:.0f}..{spread[k][1]:.0f})" for k in (base, case)]
    lines.append(f"ratio {case} / {base}: {best[case] / best[base]:.2f}x")
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
