"""Streaming: contentBlockDelta events parsed per second on one generator core.

Same layout as bench_generator.py (emulator on core 0, "fast"; each case a fresh
process on core 1), with `converse_stream`, many concurrent streams and long answers
(`--output-tokens` at the emulator's 4 tokens per delta):

  bare       aiobotocore `converse_stream`, iterating the event stream (the ceiling)
  transport  loadgen's `BedrockTransport.call(stream=True)` (TTFT timing, text join)
  loadgen    the whole `loadgen run` path on a RealClock (see bench_generator.py)

Events/s = responses/s x deltas per response (counted in the bare case).

    python benchmarks/bench_stream.py [--seconds 8] [--concurrency 128] [--output-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_generator.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=128, help="concurrent streams (default 128)")
    ap.add_argument("--output-tokens", type=int, default=256, help="tokens per answer (default 256: 64 deltas at 4 tokens per delta)")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    common = ["--seconds", str(a.seconds), "--concurrency", str(a.concurrency), "--prefix-tokens", "64",
              "--output-tokens", str(a.output_tokens), "--stream"]
    print(f"cores: {C.cores()}; emulator on core 0, generator on core 1; {a.seconds:g} s per case, "
          f"{a.concurrency} concurrent streams, {a.output_tokens}-token answers")
    best: dict[str, dict] = {}
    with C.emulator() as url:
        for r in range(a.repeat):
            for case in ("bare", "transport", "loadgen"):
                extra = ["--rate", str(1.5 * best["bare"]["rps"])] if case == "loadgen" else []
                res = C.run_child(GEN, ["--child", case, "--url", url, *common, *extra])
                if case not in best or res["rps"] > best[case]["rps"]:
                    best[case] = res
    per = best["bare"]["deltas_per_req"]
    base = best["bare"]["rps"] * per
    print(f"deltas per response: {per:.1f}; best of {a.repeat} rounds; baseline: bare aiobotocore stream loop")
    for case in ("bare", "transport", "loadgen"):
        x = best[case]
        ev = x["rps"] * per
        print(f"  {case:10s} {x['rps']:7.1f} streams/s  {ev:9.0f} deltas/s  {ev / base:.3f} x baseline  "
              f"{x['cpu_us_per_req'] / per:5.1f} us CPU per delta")


if __name__ == "__main__":
    main()
