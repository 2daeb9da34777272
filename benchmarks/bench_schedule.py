"""Schedule accuracy of `loadgen run`'s open loop: schedule lag and achieved rate, constant
and Poisson arrivals, on each event loop, and split over `--workers` processes.

The emulator ("fast", quotas off) runs on core 0. Each (arrivals, rate, event loop) case
runs in a fresh process pinned to core 1 that drives the `loadgen run` path as the
command does (`api.session.drive`: runner, workload, pricing, metrics, interval logs,
requests.jsonl; RealClock, aiobotocore client aimed at the emulator, gc frozen after the
client is made) for `--seconds` of real time, with a cold client, as a user's run
starts. Two lags per request, both from its intended start:

  send lag   the runner's `schedule_lag` (summary.json): the attempt's start. A request
             prepared ahead (`--ahead-ms` above 0) is stamped where it goes to HTTP, so
             this is the wire lag; built when due (0) it is when loadgen handed the built
             request to the client;
  wire lag   when botocore handed the serialised, signed request to the HTTP layer
             (the client's public `before-send` event, after loadgen's own hold), so
             request building, botocore's serialising and signing are inside it: the
             lag the target sees.

CPU/req is the process's CPU over the run divided by the requests sent; "warm-up" and
"steady" split it at `--warmup` (a cold client's first calls set up botocore's and
aiohttp's lazy state and the connections: 20-40 ms of CPU in all, which at 1,000/s leaves
a backlog the rest of the run has to absorb).

achieved = first attempts / (last wire send + 1/rate), in requests/s; the baseline is
the schedule's own rate, planned / (last intended start + 1/rate) (achieved / intended). "steady" leaves the first `--warmup`
scenario seconds out (a cold client's first calls). Targets (issue 14): p99 wire lag
< 5 ms and achieved within 1 % up to 1,000 requests/s per core, Poisson included.

`--loops uvloop,asyncio` (the default) runs every case on both event loops, one after
the other: `loadgen run`'s own (uvloop where installed, loadgen/engine/event_loop.py)
and the standard library's (`LOADGEN_EVENT_LOOP=asyncio`), the same-run baseline.
`--ahead-ms 20,0` runs every case with requests prepared that many ms ahead of their
intended start (loadgen/engine/release.py PREPARE_AHEAD_S, 20 ms as shipped) and,
as the same-run baseline, with none (0: built when due, as before issue 14's last step).

`--workers-rates` (default 1800; "" skips) adds cases of the real command split over
`--workers` processes (default 2), `python -m loadgen run --workers N --endpoint-url`
against the same emulator, unpinned (the workers and the emulator share every core).
Their lags come from requests.jsonl (`start - intended`: send lag; botocore's hook is not
reachable in the worker processes), their achieved rate from the first attempts' starts.

    python benchmarks/bench_schedule.py [--seconds 10] [--rates 100,500,750,1000,1200] [--kinds constant,poisson]
        [--loops uvloop,asyncio] [--ahead-ms 20] [--workers 2] [--workers-rates 1800]

Loopback only; dummy credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

LAG_TARGET_MS = 5.0
RATE_TOLERANCE = 0.01
_QUESTION = re.compile(rb'"text": ?"Q(\d+): ')  # workload.single's question starts "Q<index>: "


# ---- child side ---------------------------------------------------------------------


async def _run(a: argparse.Namespace) -> dict:
    import datetime as dt
    import gc
    import tempfile

    import anyio

    from loadgen.api.session import RunState, drive
    from loadgen.api.setup import make_pricer
    from loadgen.engine import schedule
    from loadgen.engine.clock import RealClock
    from loadgen.engine import release as release_module
    from loadgen.engine.transport import BedrockTransport
    from loadgen.results.directory import ResultsDir

    release_module.PREPARE_AHEAD_S = a.ahead_ms / 1000  # read when the transport is made

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
            gc.collect()
            gc.freeze()  # as `loadgen run` does once its client is made (api/run.py)
            marks: list[tuple[float, int]] = []  # (CPU s, requests sent) once scenario time passes warmup

            async def mark_warmup() -> None:
                await clock.sleep_until(a.warmup)
                marks.append((C.cpu_seconds(), len(sent)))

            cpu0 = C.cpu_seconds()
            async with anyio.create_task_group() as tg:
                tg.start_soon(mark_warmup)
                await drive(state, transport, make_pricer(sc), signals=False)
                tg.cancel_scope.cancel()
            cpu1 = C.cpu_seconds()
            cpu = cpu1 - cpu0
            gc.unfreeze()
        out.close()
        snap = state.metrics.snapshot().total
        lag = state.metrics.histogram("a", "schedule_lag")
    wire: list[tuple[float, float]] = []  # (intended, lag)
    for t, body in sent:
        m = _QUESTION.search(body if isinstance(body, bytes) else body.encode())
        if m is None:
            continue
        i = int(m.group(1))
        wire.append((intended[i], t - intended[i]))
    last = max(t for t, _ in sent) if sent else 0.0
    res = {**_figures(a, list(intended.values()), wire, last, ok=snap.ok, cpu=cpu),
           "send_p50": lag.get_value_at_percentile(50) / 1000, "send_p99": lag.get_value_at_percentile(99) / 1000}
    if marks and marks[0][1] and len(sent) > marks[0][1]:
        # a cold client's first calls cost more (lazy set-up in botocore and aiohttp): CPU per
        # request before and after the warm-up, apart
        res["cpu_us_warmup"] = (marks[0][0] - cpu0) / marks[0][1] * 1e6
        res["cpu_us_steady"] = (cpu1 - marks[0][0]) / (len(sent) - marks[0][1]) * 1e6
    return res


def _figures(a: argparse.Namespace, intended: list[float], lags: list[tuple[float, float]], last: float, *,
             ok: int, cpu: float | None) -> dict:
    """The figures of one case: `intended` every planned start, `lags` (intended, lag) per
    first attempt sent, `last` the last send (scenario s)."""
    lag = sorted(x for _, x in lags)
    steady = sorted(x for t, x in lags if t >= a.warmup)
    return {
        "kind": a.kind, "rate": a.rate, "planned": len(intended), "sent": len(lag), "ok": ok,
        "achieved": len(lag) / (last + 1.0 / a.rate) if lag else 0.0,
        # the schedule's own rate, the same way: Poisson's count and last arrival are random
        "intended_rate": len(intended) / (max(intended) + 1.0 / a.rate) if intended else 0.0,
        "wire_p50": _pct(lag, 0.50) * 1000, "wire_p99": _pct(lag, 0.99) * 1000, "wire_max": lag[-1] * 1000 if lag else 0,
        "steady_p99": _pct(steady, 0.99) * 1000, "steady_max": steady[-1] * 1000 if steady else 0.0,
        "cpu_us_per_req": cpu / max(1, len(lag)) * 1e6 if cpu is not None else None,
    }


def _pct(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))]


# ---- `loadgen run --workers N`, the real command ----------------------------------------


def _workers_case(a: argparse.Namespace, url: str, work: Path) -> dict:
    """One `python -m loadgen run --workers N` case against the emulator at `url`: lags and
    the achieved rate from its requests.jsonl (send lag: the hook behind wire lag is in the
    workers' processes)."""
    from loadgen.engine import schedule

    text = C.scenario_text(rate=a.rate, duration_s=a.seconds, max_in_flight=a.max_in_flight,
                           prefix_tokens=a.prefix_tokens, kind=a.kind).replace('kind = "aws"\n', "")
    path = work / f"w{a.workers}-{a.kind}-{a.rate:g}.toml"
    path.write_text(text)
    intended = [t for _, t, _ in schedule.open_loop(C.load_scenario(text, url))]
    out = work / path.stem
    cmd = [sys.executable, "-m", "loadgen", "run", str(path), "--endpoint-url", url, "--workers", str(a.workers),
           "--out", str(out), "--quiet"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **C.CHILD_ENV}, cwd=C.REPO,
                       timeout=600)
    if p.returncode not in (0, 1):  # 1: behind schedule (a threshold) is a result here
        raise RuntimeError(f"loadgen run --workers {a.workers} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    (d,) = list(out.iterdir())
    lags, last, ok = [], 0.0, 0
    with open(d / "requests.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r["attempt"] != 1:
                continue
            lags.append((r["intended"], r["start"] - r["intended"]))
            last = max(last, r["start"])
            ok += r["status"] == "ok"
    return _figures(a, intended, lags, last, ok=ok, cpu=None)


# ---- parent -----------------------------------------------------------------------------


def _row(label: str, r: dict, clean: bool, ratio: float) -> str:
    cpu = f"{r['cpu_us_per_req']:6.0f}us" if r.get("cpu_us_per_req") is not None else f"{'-':>8}"
    split = (f"{r['cpu_us_warmup']:6.0f}us {r['cpu_us_steady']:6.0f}us" if "cpu_us_steady" in r
             else f"{'-':>8} {'-':>8}")
    send = f"{r['send_p99']:6.2f}ms" if "send_p99" in r else f"{'-':>8}"
    return (f"{r['kind']:>8} {r['rate']:7.0f} {label:>10} {r['sent']:6d} {r['achieved']:10.1f} {ratio:10.4f} "
            f"{send} {r['wire_p50']:6.2f}ms {r['wire_p99']:6.2f}ms {r['wire_max']:6.1f}ms "
            f"{r['steady_p99']:8.2f}ms {r['steady_max']:8.1f}ms {cpu} {split}  {'yes' if clean else 'NO'}"
            + (f"   ({r['sent'] - r['ok']} not ok)" if r["sent"] != r["ok"] else ""))


def _judge(r: dict) -> tuple[bool, float]:
    ratio = r["achieved"] / r["intended_rate"] if r["intended_rate"] else 0.0
    return r["steady_p99"] < LAG_TARGET_MS and abs(ratio - 1) <= RATE_TOLERANCE, ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="run length per case, s (default 10)")
    ap.add_argument("--rates", default="100,500,750,1000,1200", help="requests/s, comma-separated")
    ap.add_argument("--kinds", default="constant,poisson", help="arrival processes (default constant,poisson)")
    ap.add_argument("--loops", default="uvloop,asyncio",
                    help="event loops, each case on each (default uvloop,asyncio; asyncio is the baseline)")
    ap.add_argument("--ahead-ms", default="20",
                    help="how early requests are prepared, ms, comma-separated: each case runs with each "
                         "(default 20, as shipped; 0 = built when due, the baseline)")
    ap.add_argument("--workers", type=int, default=2, help="processes of the split cases (default 2)")
    ap.add_argument("--workers-rates", default="1800",
                    help='requests/s of the `run --workers N` cases, comma-separated (default 1800; "" skips)')
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
        a.ahead_ms = float(a.ahead_ms)
    if a.child:
        from loadgen.engine import event_loop

        C.pin(1)
        res = event_loop.run(_run, a)
        res["loop"] = event_loop.loop_name()
        return C.emit(res)
    rates = [float(r) for r in a.rates.split(",") if r]
    loops = [x for x in a.loops.split(",") if x]
    aheads = [float(x) for x in a.ahead_ms.split(",") if x]
    print(f"cores: {C.cores()}; emulator on core 0, `loadgen run` path on core 1; {a.seconds:g} s per case, "
          f"max_in_flight {a.max_in_flight}; event loops {', '.join(loops)}; load average {C.load_average()}")
    print(f"send lag: runner start - intended (summary.json); wire lag: botocore's before-send - intended; "
          f"steady: intended >= {a.warmup:g} s")
    print(f"{'arrivals':>8} {'rate/s':>7} {'loop':>10} {'sent':>6} {'achieved/s':>10} {'x intended':>10} "
          f"{'send p99':>8} {'wire p50':>8} {'wire p99':>8} {'wire max':>8} {'steady p99':>10} {'steady max':>10} "
          f"{'CPU/req':>8} {'warm-up':>8} {'steady':>8}  clean")
    best: dict[tuple[str, str], float] = {}
    with C.emulator() as url:
        for kind in a.kinds.split(","):
            for rate in rates:
                for loop in loops:
                    for ahead in aheads:
                        r = C.run_child(__file__, ["--child", "--url", url, "--rate", str(rate), "--kind", kind,
                                                   "--seconds", str(a.seconds), "--max-in-flight",
                                                   str(a.max_in_flight), "--prefix-tokens", str(a.prefix_tokens),
                                                   "--warmup", str(a.warmup), "--ahead-ms", str(ahead)],
                                        env={"LOADGEN_EVENT_LOOP": loop})
                        clean, ratio = _judge(r)
                        label = f"{r['loop']}/{ahead:g}"
                        if clean:
                            best[(kind, label)] = max(rate, best.get((kind, label), 0.0))
                        print(_row(label, r, clean, ratio), flush=True)
        w_rates = [float(x) for x in a.workers_rates.split(",") if x]
        if w_rates:
            print(f"`loadgen run --workers {a.workers}` (the command, unpinned; loop {loops[0]}; lags are send lags "
                  f"from requests.jsonl, shown in the wire columns)")
            with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as tmp:
                for kind in a.kinds.split(","):
                    for rate in w_rates:
                        a.kind, a.rate = kind, rate
                        os.environ["LOADGEN_EVENT_LOOP"] = loops[0] if loops else ""
                        r = _workers_case(a, url, Path(tmp))
                        clean, ratio = _judge(r)
                        print(_row(f"{a.workers} workers", r, clean, ratio), flush=True)
    print(f"load average after: {C.load_average()}")
    for kind in a.kinds.split(","):
        for loop in (f"{x}/{ahead:g}" for x in loops for ahead in aheads):
            print(f"highest clean rate, {kind}, {loop} ms ahead (steady p99 wire lag < {LAG_TARGET_MS:g} ms, achieved within "
                  f"{100 * RATE_TOLERANCE:g} %): " + (f"{best[(kind, loop)]:g}/s" if (kind, loop) in best else "none"))


if __name__ == "__main__":
    main()
