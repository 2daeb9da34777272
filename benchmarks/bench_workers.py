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

    python benchmarks/bench_workers.py [--workers 2] [--requests 8000] [--repeat 2] [--mode builtin|endpoint]

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


def ceiling(workers: int, a: argparse.Namespace, work: Path, url: str | None) -> dict:
    """One `loadgen run` case: attempts, wall span of the sends, requests/s."""
    sc = work / "bench.toml"
    sc.write_text(SCENARIO.format(duration=max(60, 2 * a.requests / a.rate), region=C.REGION, in_flight=a.concurrency, model=C.MODEL_ID,
                                  rate=a.rate, emulator=C.EMULATOR_CONFIG if url is None else ""))
    out = work / f"res-{workers}-{len(list(work.glob('res-*')))}"
    cmd = [sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--quiet", "--workers", str(workers),
           "--max-requests", str(a.requests)]
    if url is not None:
        cmd += ["--endpoint-url", url]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **C.CHILD_ENV}, cwd=C.REPO,
                       timeout=600)
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
    a = ap.parse_args()
    load0 = os.getloadavg()
    rounds: dict[int, list[dict]] = {1: [], a.workers: []}
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-workers-") as tmp:
        work = Path(tmp)
        for _ in range(a.repeat):
            for n in (1, a.workers):
                if a.mode == "endpoint":
                    with C.emulator(core=0) as url:
                        r = ceiling(n, a, work, url)
                else:
                    r = ceiling(n, a, work, None)
                rounds[n].append(r)
                print(f"  --workers {n}: {r['attempts']} attempts in {r['span_s']:.2f} s = {r['rps']:.0f} req/s",
                      flush=True)
    load1 = os.getloadavg()
    best = {n: max(r["rps"] for r in rs) for n, rs in rounds.items()}
    spread = {n: (min(r["rps"] for r in rs), max(r["rps"] for r in rs)) for n, rs in rounds.items()}
    print(textwrap.dedent(f"""
        mode {a.mode}, {C.cores()} cores, load average {load0[0]:.2f} before, {load1[0]:.2f} after
        --workers 1: best {best[1]:.0f} req/s (spread {spread[1][0]:.0f}..{spread[1][1]:.0f})
        --workers {a.workers}: best {best[a.workers]:.0f} req/s (spread {spread[a.workers][0]:.0f}..{spread[a.workers][1]:.0f})
        ratio {a.workers} workers / 1 worker: {best[a.workers] / best[1]:.2f}x"""))


if __name__ == "__main__":
    main()
