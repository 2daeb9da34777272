"""Schedule accuracy of `loadgen run`'s open loop: schedule lag and achieved rate, constant
and Poisson arrivals.

The emulator ("fast", quotas off) runs on core 0. Each (arrivals, rate) case runs in a
fresh process pinned to core 1 that drives the `loadgen run` path as the command does
(`api.session.drive`: runner, workload, pricing, metrics, requests.jsonl; RealClock,
aiobotocore client aimed at the emulator) for `--seconds` of real time, with a cold
client, as a user's run starts. Two lags per request, both from its intended start:

  send lag   the runner's `schedule_lag` (summary.json): when loadgen handed the built
             request to the client (the start every latency is measured from);
  wire lag   when botocore handed the serialised, signed request to the HTTP layer
             (the client's public `before-send` event), so request building, botocore's
             serialising and signing are inside it: the lag the target sees.

achieved = first attempts / (last wire send + 1/rate), in requests/s; the baseline is
the schedule's own rate, planned / (last intended start + 1/rate) (achieved / intended). "steady" leaves the first `--warmup`
scenario seconds out (a cold client's first calls). Targets (issue 14): p99 wire lag
< 5 ms and achieved within 1 % up to 1,000 requests/s per core, Poisson included.

    python benchmarks/bench_schedule.py [--seconds 10] [--rates 100,500,750,1000,1200] [--kinds constant,poisson]

Loopback only; dummy credentials.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

LAG_TARGET_MS = 5.0
RATE_TOLERANCE = 0.01
_QUESTION = re.compile(rb'"text": ?"Q(\d+): ')  # workload.single's question starts "Q<index>: "


# ---- child side ---------------------------------------------------------------------


async def _run(a: argparse.Namespace) -> dict:
    import datetime as dt
    import tempfile

    from loadgen.api.session import RunState, drive
    from loadgen.api.setup import make_pricer
    from loadgen.engine import schedule
    from loadgen.engine.clock import RealClock
    from loadgen.engine.transport import BedrockTransport
    from loadgen.results.directory import ResultsDir

    sc = C.load_scenario(C.scenario_text(rate=a.rate, duration_s=a.seconds, max_in_flight=a.max_in_flight,
                                         prefix_tokens=a.prefix_tokens, kind=a.kind), a.url)
    intended = {i: t for i, t, _ in schedule.open_loop(sc)}
    sent: list[tuple[float, bytes]] = []  # (clock time, body) as each request goes to the wire
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        out = ResultsDir.create(d, sc.name, dt.datetime.now(dt.timezone.utc))
        clock = RealClock()
        async with BedrockTransport.open(clock, region=C.REGION, endpoint_url=a.url,
                                         max_connections=a.max_in_flight, dummy_credentials=True) as transport:
            transport.client.meta.events.register(
                "before-send.bedrock-runtime", lambda request, **_: sent.append((clock.now(), request.body)))
            state = RunState(sc, clock, out)
            cpu0 = C.cpu_seconds()
            await drive(state, transport, make_pricer(sc), signals=False)
            cpu = C.cpu_seconds() - cpu0
        out.close()
        snap = state.metrics.snapshot().total
        lag = state.metrics.histogram("a", "schedule_lag")
    wire, steady = [], []
    for t, body in sent:
        m = _QUESTION.search(body if isinstance(body, bytes) else body.encode())
        if m is None:
            continue
        i = int(m.group(1))
        wire.append(t - intended[i])
        if intended[i] >= a.warmup:
            steady.append(t - intended[i])
    last = max(t for t, _ in sent) if sent else 0.0
    wire.sort()
    steady.sort()
    return {
        "kind": a.kind, "rate": a.rate, "planned": len(intended), "sent": len(wire), "ok": snap.ok,
        "achieved": len(wire) / (last + 1.0 / a.rate) if wire else 0.0,
        # the schedule's own rate, the same way: Poisson's count and last arrival are random
        "intended_rate": len(intended) / (max(intended.values()) + 1.0 / a.rate) if intended else 0.0,
        "send_p50": lag.get_value_at_percentile(50) / 1000, "send_p99": lag.get_value_at_percentile(99) / 1000,
        "wire_p50": _pct(wire, 0.50) * 1000, "wire_p99": _pct(wire, 0.99) * 1000, "wire_max": wire[-1] * 1000 if wire else 0,
        "steady_p99": _pct(steady, 0.99) * 1000, "steady_max": steady[-1] * 1000 if steady else 0.0,
        "cpu_us_per_req": cpu / max(1, len(wire)) * 1e6,
    }


def _pct(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))]


# ---- parent -----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="run length per case, s (default 10)")
    ap.add_argument("--rates", default="100,500,750,1000,1200", help="requests/s, comma-separated")
    ap.add_argument("--kinds", default="constant,poisson", help="arrival processes (default constant,poisson)")
    ap.add_argument("--max-in-flight", type=int, default=256, help="in-flight bound (default 256)")
    ap.add_argument("--prefix-tokens", type=int, default=64, help="system prompt size (default 64: tiny bodies)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="scenario seconds left out of the steady-state lag figures (default 1)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        import anyio

        C.pin(1)
        return C.emit(anyio.run(_run, a))
    rates = [float(r) for r in a.rates.split(",")]
    print(f"cores: {C.cores()}; emulator on core 0, `loadgen run` path on core 1; {a.seconds:g} s per case, "
          f"max_in_flight {a.max_in_flight}; load average {C.load_average()}")
    print(f"send lag: runner start - intended (summary.json); wire lag: botocore's before-send - intended; "
          f"steady: intended >= {a.warmup:g} s")
    print(f"{'arrivals':>8} {'rate/s':>7} {'sent':>6} {'achieved/s':>10} {'x intended':>10} {'send p99':>8} "
          f"{'wire p50':>8} {'wire p99':>8} {'wire max':>8} {'steady p99':>10} {'steady max':>10} {'CPU/req':>8}  clean")
    best: dict[str, float] = {}
    with C.emulator() as url:
        for kind in a.kinds.split(","):
            for rate in rates:
                r = C.run_child(__file__, ["--child", "--url", url, "--rate", str(rate), "--kind", kind,
                                           "--seconds", str(a.seconds), "--max-in-flight", str(a.max_in_flight),
                                           "--prefix-tokens", str(a.prefix_tokens), "--warmup", str(a.warmup)])
                ratio = r["achieved"] / r["intended_rate"] if r["intended_rate"] else 0.0
                clean = r["steady_p99"] < LAG_TARGET_MS and abs(ratio - 1) <= RATE_TOLERANCE
                if clean:
                    best[kind] = rate
                print(f"{kind:>8} {rate:7.0f} {r['sent']:6d} {r['achieved']:10.1f} {ratio:10.4f} "
                      f"{r['send_p99']:6.2f}ms {r['wire_p50']:6.2f}ms {r['wire_p99']:6.2f}ms {r['wire_max']:6.1f}ms "
                      f"{r['steady_p99']:8.2f}ms {r['steady_max']:8.1f}ms {r['cpu_us_per_req']:6.0f}us  "
                      f"{'yes' if clean else 'NO'}" + (f"   ({r['sent'] - r['ok']} not ok)" if r["sent"] != r["ok"] else ""),
                      flush=True)
    print(f"load average after: {C.load_average()}")
    for kind in a.kinds.split(","):
        print(f"highest clean rate, {kind} (steady p99 wire lag < {LAG_TARGET_MS:g} ms, achieved within "
              f"{100 * RATE_TOLERANCE:g} %): " + (f"{best[kind]:g}/s" if kind in best else "none"))


if __name__ == "__main__":
    main()
