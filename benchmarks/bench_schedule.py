"""Schedule accuracy of `loadgen run`'s open loop: p99 schedule lag and achieved rate.

The emulator ("fast", quotas off) runs on core 0; `python -m loadgen run` runs as a
user would start it (`--target aws --endpoint-url URL --yes`, dummy credentials),
pinned to core 1, at each constant rate for `--seconds` of real time. From its results:

  p99 lag        summary.json `latency_ms.schedule_lag.p99` (send - intended start)
  achieved rate  first attempts / (last send - first send), from requests.jsonl
  says so?       whether the printed summary mentions schedule lag at all

The baseline is the intended rate itself (achieved / intended). Targets (issue 5):
p99 lag < 5 ms and achieved within 1 % up to 600 requests/s per core.

    python benchmarks/bench_schedule.py [--seconds 10] [--rates 100,500,600,750,900,1000,1200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

LAG_TARGET_MS = 5.0
RATE_TOLERANCE = 0.01


def run_at(url: str, rate: float, seconds: float, a: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        sc = Path(d) / "bench.toml"
        sc.write_text(C.scenario_text(rate=rate, duration_s=seconds, max_in_flight=a.max_in_flight,
                                      stream=a.stream, prefix_tokens=a.prefix_tokens, kind="constant"))
        cmd = [sys.executable, "-m", "loadgen", "run", str(sc), "--target", "aws", "--endpoint-url", url,
               "--yes", "--quiet", "--out", str(Path(d) / "results")]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **C.CHILD_ENV}, cwd=C.REPO,
                             preexec_fn=lambda: C.pin(1), timeout=seconds * 20 + 120)
        if out.returncode != 0:
            raise RuntimeError(f"loadgen run at {rate}/s failed ({out.returncode}):\n{out.stderr[-3000:]}")
        rdir = next((Path(d) / "results").iterdir())
        summary = json.loads((rdir / "summary.json").read_text())
        starts, steady = [], []
        with open(rdir / "requests.jsonl") as f:
            for line in f:
                r = json.loads(line)
                if r["attempt"] == 1:
                    starts.append(r["start"])
                    if r["intended"] >= a.warmup:
                        steady.append(r["start"] - r["intended"])
        arm = summary["arms"]["a"]
        lag = arm["latency_ms"]["schedule_lag"]
        # The run's own rate: every request of the schedule (intended 0 .. D) over the time it
        # took to send them all; a saturated generator sends its last ones late, lowering it.
        achieved = len(starts) / (max(starts) + 1.0 / rate) if starts else 0.0
        steady.sort()
        printed = out.stdout + out.stderr
        return {
            "rate": rate, "sent": len(starts), "achieved": achieved, "lag_p50": lag["p50"], "lag_p99": lag["p99"],
            "lag_max": lag["max"], "ok": arm["requests"]["ok"], "errors": arm["requests"]["sent"] - arm["requests"]["ok"],
            "says_lag": "lag" in printed.lower(), "wall_s": summary.get("wall_s"),
            "steady_p99": _pct(steady, 0.99) * 1000, "steady_max": (steady[-1] if steady else 0.0) * 1000,
        }


def _pct(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="run length per rate, s (default 10)")
    ap.add_argument("--rates", default="100,500,600,750,900,1000,1200", help="requests/s, comma-separated")
    ap.add_argument("--max-in-flight", type=int, default=256, help="in-flight bound (default 256)")
    ap.add_argument("--prefix-tokens", type=int, default=64, help="system prompt size (default 64: tiny bodies)")
    ap.add_argument("--stream", action="store_true", help="converse_stream instead of converse")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="scenario seconds left out of the steady-state lag figures (default 1)")
    a = ap.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    print(f"cores: {C.cores()}; emulator on core 0, `loadgen run` on core 1; {a.seconds:g} s per rate, "
          f"constant arrivals, max_in_flight {a.max_in_flight}, {'converse_stream' if a.stream else 'converse'}")
    print(f"lag p50/p99/max: summary.json (whole run); steady p99/max: requests after the first "
          f"{a.warmup:g} s (without the client's first-call warm-up)")
    print(f"{'rate/s':>7} {'sent':>6} {'achieved/s':>10} {'x intended':>10} {'lag p50':>8} {'lag p99':>8} "
          f"{'lag max':>8} {'steady p99':>10} {'steady max':>10}  clean  summary mentions lag")
    best = None
    with C.emulator() as url:
        for rate in rates:
            r = run_at(url, rate, a.seconds, a)
            ratio = r["achieved"] / rate
            clean = r["steady_p99"] < LAG_TARGET_MS and abs(ratio - 1) <= RATE_TOLERANCE
            if clean:
                best = rate
            print(f"{rate:7.0f} {r['sent']:6d} {r['achieved']:10.1f} {ratio:10.4f} {r['lag_p50']:7.2f}ms "
                  f"{r['lag_p99']:7.2f}ms {r['lag_max']:7.1f}ms {r['steady_p99']:8.2f}ms {r['steady_max']:8.1f}ms  "
                  f"{'yes' if clean else 'NO ':5s}  "
                  f"{'yes' if r['says_lag'] else 'no'}"
                  + (f"   ({r['errors']} not ok)" if r["errors"] else ""), flush=True)
    print(f"\nhighest clean rate (steady p99 lag < {LAG_TARGET_MS:g} ms, achieved within {100 * RATE_TOLERANCE:g} %): "
          f"{best:g}/s" if best else "\nno clean rate")


if __name__ == "__main__":
    main()
