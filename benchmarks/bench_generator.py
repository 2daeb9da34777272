"""Generator overhead: requests/s and CPU per request through loadgen vs a bare aiobotocore loop.

The emulator ("fast" latency, quotas off) runs in its own process on core 0; each case
runs in a fresh process pinned to core 1, so the generator has one core to itself:

  bare           N tasks each looping `await client.converse(**params)` on one
                 aiobotocore client with the Config a user writes for a load loop
                 (botocore's retries off, a connection per task), the same request
                 body loadgen builds. The baseline.
  bare+switches  the same loop on a client with loadgen's Config
                 (`transport.client_config`: parameter validation off, the
                 User-Agent built once): what those public switches give any loop.
  transport      N tasks looping loadgen's `BedrockTransport.call` (loadgen's client,
                 the timing and outcome wrapper).
  loadgen        the whole `loadgen run` path (`api.session.drive`: Runner, workload
                 builder, cache expectations, pricing, Metrics.record, requests.jsonl,
                 live progress) on a RealClock, open loop at 1.5 x the ceiling with
                 `max_in_flight = N`, stopped by `--max-requests` after about `--seconds`.

loadgen's cases run on the event loop `loadgen run` uses (uvloop where installed:
loadgen/engine/event_loop.py); the bare loops on asyncio's own, as a user's script does.
"bare, uvloop" and "loadgen, asyncio loop" swap them (`LOADGEN_EVENT_LOOP`), so the
loop's share is measured in the same run. `--cases` picks cases (the bare baseline
always runs).

With awscrt installed (botocore then signs with it), `--crt` adds the loadgen case
again with `BOTO_DISABLE_CRT=true` (botocore's own switch) to measure what it gives.
Then the per-request cost of loadgen's own pieces is timed in-process and shown
against the bare call's CPU time, ending with the whole `loadgen run` path on a
transport that answers at once (no HTTP).

    python benchmarks/bench_generator.py [--seconds 8] [--concurrency 32] [--repeat 2] [--crt] [--profile]
        [--cases 'loadgen;loadgen, asyncio loop'] [--no-pieces]

Loopback only; dummy credentials.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

ASYNCIO = {"LOADGEN_EVENT_LOOP": "asyncio"}  # the standard library's event loop (event_loop.py's opt-out)


# ---- child side ---------------------------------------------------------------------


def _bench_scenario(url: str, a: argparse.Namespace, rate: float, duration_s: float):
    return C.load_scenario(C.scenario_text(rate=rate, duration_s=duration_s, max_in_flight=a.concurrency,
                                           stream=a.stream, prefix_tokens=a.prefix_tokens,
                                           output_tokens=a.output_tokens), url)


def _request_params(sc) -> dict:
    """The Converse parameters loadgen builds for request 0 of the scenario's one arm."""
    import random

    from loadgen.engine.workload import ArmWorkload, draw_sizes

    return ArmWorkload(sc, sc.arms[0]).single(0, draw_sizes(sc, random.Random(0))).params


async def _bare(url: str, a: argparse.Namespace) -> dict:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    from loadgen.engine.transport import client_config

    sc = _bench_scenario(url, a, 1.0, 60)
    params = _request_params(sc)
    session = get_session()
    if a.child == "bare+switches":
        config = client_config(session, max_connections=a.concurrency)
    else:
        config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"},
                           max_pool_connections=max(10, a.concurrency), read_timeout=300, connect_timeout=10,
                           tcp_keepalive=True)
    async with session.create_client("bedrock-runtime", region_name=C.REGION, endpoint_url=url,
                                           config=config, aws_access_key_id="loadgen-emulator",
                                           aws_secret_access_key="loadgen-emulator") as client:
        deltas = 0

        async def call() -> None:
            nonlocal deltas
            if a.stream:
                resp = await client.converse_stream(**params)
                async for event in resp["stream"]:
                    if "contentBlockDelta" in event:
                        deltas += 1
            else:
                await client.converse(**params)

        res = await _loop(a, call)
        res["deltas_per_req"] = deltas / (res["requests"] + 20)  # + the warm-up calls
        return res


async def _transport(url: str, a: argparse.Namespace) -> dict:
    from loadgen.engine.clock import RealClock
    from loadgen.engine.transport import BedrockTransport

    sc = _bench_scenario(url, a, 1.0, 60)
    params = _request_params(sc)
    clock = RealClock()
    async with BedrockTransport.open(clock, region=C.REGION, endpoint_url=url, max_connections=a.concurrency,
                                     dummy_credentials=True) as t:
        async def call() -> None:
            out = await t.call(params, stream=a.stream, timeout=120.0)
            if out.status != "ok":
                raise RuntimeError(f"transport call failed: {out.error_code} {out.message}")
        return await _loop(a, call)


async def _loop(a: argparse.Namespace, call) -> dict:
    """N workers calling `call` for a.seconds after a warm-up; requests/s and CPU per request."""
    import anyio

    for _ in range(20):  # warm-up: connections, caches, first-call imports
        await call()
    done = 0
    stop = time.perf_counter() + a.seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    cpu0, t0 = C.cpu_seconds(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(a.concurrency):
            tg.start_soon(worker)
    wall, cpu = time.perf_counter() - t0, C.cpu_seconds() - cpu0
    return {"requests": done, "wall_s": wall, "cpu_s": cpu, "rps": done / wall, "cpu_us_per_req": cpu / done * 1e6}


async def _loadgen(url: str, a: argparse.Namespace) -> dict:
    """The `loadgen run` path, driven as `loadgen run` drives it (api/session.py), against the emulator at url."""
    import datetime as dt
    import tempfile

    from loadgen.engine.clock import RealClock
    from loadgen.api.session import RunState, drive
    from loadgen.api.setup import make_pricer
    from loadgen.engine.runner import Limits
    from loadgen.results.directory import ResultsDir
    from loadgen.engine.transport import BedrockTransport

    rate = a.rate
    total = int(a.rate / 1.5 * a.seconds)  # about `seconds` worth at the ceiling
    sc = _bench_scenario(url, a, rate, total / rate * 4 + 60)
    pricer = make_pricer(sc)
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        out = ResultsDir.create(d, sc.name, dt.datetime.now(dt.timezone.utc))
        # warm-up on a throwaway state so the measured run starts with warm connections
        clock = RealClock()
        async with BedrockTransport.open(clock, region=C.REGION, endpoint_url=url,
                                         max_connections=a.concurrency, dummy_credentials=True) as transport:
            for _ in range(20):
                await transport.call(_request_params(sc), stream=a.stream, timeout=120.0)
            state = RunState(sc, clock, out)
            limits = Limits(max_requests=total)
            prof = None
            if a.profile:
                import cProfile
                prof = cProfile.Profile()
                prof.enable()
            cpu0, t0 = C.cpu_seconds(), time.perf_counter()
            await drive(state, transport, pricer, limits=limits, signals=False)
            wall, cpu = time.perf_counter() - t0, C.cpu_seconds() - cpu0
            if prof is not None:
                prof.disable()
                _print_profile(prof, sys.stderr)
        out.close()
        snap = state.metrics.snapshot().total
        lag = state.metrics.histogram("a", "schedule_lag")
    if snap.ok != total:
        raise RuntimeError(f"loadgen run: {snap.ok} of {total} requests ok (errors: {snap.sent - snap.ok})")
    return {"requests": snap.ok, "wall_s": wall, "cpu_s": cpu, "rps": snap.ok / wall,
            "cpu_us_per_req": cpu / snap.ok * 1e6, "lag_p50_ms": lag.get_value_at_percentile(50) / 1000}


def _print_profile(prof, stream) -> None:
    """Top functions by own time, and own time summed per package (where the CPU goes)."""
    import pstats

    st = pstats.Stats(prof, stream=stream)
    by_pkg: dict[str, float] = {}
    total = 0.0
    for (file, _line, _fn), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        total += tt
        key = "other"
        for pkg in ("loadgen", "botocore", "aiobotocore", "aiohttp", "anyio", "asyncio", "hdrh", "json",
                    "multidict", "yarl", "urllib", "hmac", "hashlib", "email", "http"):
            if f"/{pkg}/" in file or file.endswith(f"/{pkg}.py"):
                key = pkg
                break
        if file.startswith("~"):
            key = "builtins"
        by_pkg[key] = by_pkg.get(key, 0.0) + tt
    print("\nprofile (own time by package, % of profiled time):", file=stream)
    for k, v in sorted(by_pkg.items(), key=lambda kv: -kv[1]):
        print(f"  {k:12s} {100 * v / total:5.1f}%", file=stream)
    print("\nloadgen functions by own time:", file=stream)
    rows = [(tt, ct, nc, f"{file.split('/loadgen/')[-1]}:{fn}") for (file, _l, fn), (_cc, nc, tt, ct, _c)
            in st.stats.items() if "/loadgen/" in file]
    for tt, ct, nc, name in sorted(rows, reverse=True)[:20]:
        print(f"  {100 * tt / total:5.2f}% own {100 * ct / total:5.1f}% cum  {nc:8d} calls  {name}", file=stream)
    print("\ntop 25 by own time:", file=stream)
    st.sort_stats("tottime").print_stats(25)


def child(a: argparse.Namespace) -> None:
    import botocore.compat

    from loadgen.engine import event_loop

    C.pin(1)
    fn = {"bare": _bare, "bare+switches": _bare, "transport": _transport, "loadgen": _loadgen}[a.child]
    res = event_loop.run(fn, a.url, a)  # the loop `loadgen run` uses; LOADGEN_EVENT_LOOP chooses
    res["loop"] = event_loop.loop_name()
    res["peak_rss_mb"] = C.peak_rss_mb()
    res["crt"] = bool(botocore.compat.HAS_CRT)
    C.emit(res)


# ---- loadgen's own pieces, timed in-process -------------------------------------------


def pieces(a: argparse.Namespace) -> dict[str, float]:
    """Microseconds per call of each piece loadgen adds to a request (best of 5)."""
    import datetime as dt
    import random
    import tempfile
    import timeit

    from loadgen.engine.expectations import CacheExpectations
    from loadgen.results.metrics import ArmInfo, Metrics
    from loadgen.engine.record import Attempt
    from loadgen.results.directory import ResultsDir, attempt_line
    from loadgen.api.setup import make_pricer
    from loadgen.engine.workload import ArmWorkload, draw_sizes

    C.pin(1)
    sc = _bench_scenario("http://127.0.0.1:9", a, 1000.0, 60)
    arm = sc.arms[0]
    wl = ArmWorkload(sc, arm)
    pricer = make_pricer(sc)
    exp = CacheExpectations(wl.info.cache_min_tokens)
    metrics = Metrics([ArmInfo.from_arm(arm)])
    usage = {"inputTokens": 90, "outputTokens": 16, "totalTokens": 106, "cacheReadInputTokens": 0,
             "cacheWriteInputTokens": 0}
    att = Attempt(arm="a", session=1, turn=0, attempt=1, intended=1.0, start=1.0001, first_token=1.002,
                  end=1.002, status="ok", error_code=None, model_id=arm.model_id, profile=arm.profile,
                  region="us-east-1", input_tokens=90, output_tokens=16, cost_usd=1e-4, wall_start=1.7e9,
                  request_id="0f3c2a9e-5b7d-4d2b-9a51-1c7e3f9b2d11", stop_reason="end_turn")
    req = wl.single(0, draw_sizes(sc, random.Random(0)))
    costs = pricer(arm.model_id, usage, arm.cache_ttl)
    i = iter(range(10**9))

    def build() -> None:
        n = next(i)
        wl.single(n, draw_sizes(sc, random.Random(f"{sc.seed}:sizes:{n}")))

    def seeded_rngs() -> None:  # the Random objects the runner seeds per request (sizes, retry)
        n = next(i)
        random.Random(f"{sc.seed}:sizes:{n}")
        random.Random(f"{sc.seed}:retry:a:{n}:0")

    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        out = ResultsDir.create(d, "bench", dt.datetime.now(dt.timezone.utc))
        cases = {
            "build request (workload.single + draw_sizes)": build,
            "  of which: 2 seeded random.Random(str)": seeded_rngs,
            "cache prediction (predict + observe)": lambda: (exp.predict(req.checkpoints, 1.0),
                                                             exp.observe(req.checkpoints, 1.0)),
            "pricing (pricer per attempt)": lambda: pricer(arm.model_id, usage, arm.cache_ttl),
            "Attempt(...) construction": lambda: Attempt(**att.__dict__),
            "metrics.record": lambda: metrics.record(att, costs),
            "requests.jsonl line (json)": lambda: attempt_line(att),
            "requests.jsonl append (json + write)": lambda: out.append(att),
        }
        res = {}
        for name, fn in cases.items():
            n = 2000
            best = min(timeit.repeat(fn, number=n, repeat=5)) / n
            res[name] = best * 1e6
        out.close()
    res["whole runner + sink, instant transport (CPU)"] = _runner_alone(a)
    return res


def _runner_alone(a: argparse.Namespace, n: int = 20000) -> float:
    """CPU us per request of the whole `loadgen run` path (runner, workload, pricing, metrics,
    requests.jsonl, event loop) with a transport that answers after one loop turn: what
    loadgen costs with no HTTP at all. Best of 3."""
    import datetime as dt
    import tempfile

    import anyio.lowlevel

    from loadgen.engine import event_loop
    from loadgen.engine.clock import RealClock
    from loadgen.results.directory import ResultsDir
    from loadgen.api.session import RunState, drive
    from loadgen.api.setup import make_pricer
    from loadgen.engine.runner import Limits
    from loadgen.engine.transport import Outcome

    usage = {"inputTokens": 90, "outputTokens": 16, "totalTokens": 106, "cacheReadInputTokens": 0,
             "cacheWriteInputTokens": 0}

    class Instant:
        def __init__(self, clock: RealClock) -> None:
            self.clock = clock

        async def call(self, params, *, stream, timeout, on_first_token=None, draw_key=None):
            start = self.clock.now()
            await anyio.lowlevel.checkpoint()
            now = self.clock.now()
            return Outcome(status="ok", start=start, end=now, first_token=now, usage=usage, region=C.REGION,
                           request_id="0f3c2a9e-5b7d-4d2b-9a51-1c7e3f9b2d11", stop_reason="end_turn",
                           text="hello", http_status=200)

    sc = _bench_scenario("http://127.0.0.1:9", a, 1e6, 60)  # far over capacity: always behind
    best = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
            out = ResultsDir.create(d, sc.name, dt.datetime.now(dt.timezone.utc))
            clock = RealClock()
            state = RunState(sc, clock, out)
            limits = Limits(max_requests=n)
            cpu0 = C.cpu_seconds()
            event_loop.run(lambda: drive(state, Instant(clock), make_pricer(sc), limits=limits, signals=False))
            best = min(best, (C.cpu_seconds() - cpu0) / n * 1e6)
            out.close()
    return best


# ---- parent -----------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds per case (default 8)")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    ap.add_argument("--prefix-tokens", type=int, default=64, help="system prompt size (default 64: tiny bodies)")
    ap.add_argument("--stream", action="store_true", help="converse_stream instead of converse")
    ap.add_argument("--output-tokens", type=int, default=16, help="output tokens per response (default 16)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of the cases (default 2)")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the loadgen case to stderr")
    ap.add_argument("--cases", help="only these cases, separated by ';' (the bare baseline always runs)")
    ap.add_argument("--no-pieces", action="store_true", help="skip the in-process timing of loadgen's pieces")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--pieces", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--crt", action="store_true",
                    help="also run the loadgen case with botocore's awscrt signer switched off (BOTO_DISABLE_CRT)")
    a = ap.parse_args()
    if a.child:
        return child(a)
    if a.pieces:
        return C.emit(pieces(a))

    common = ["--seconds", str(a.seconds), "--concurrency", str(a.concurrency),
              "--prefix-tokens", str(a.prefix_tokens), "--output-tokens", str(a.output_tokens)] + \
        (["--stream"] if a.stream else [])
    print(f"cores: {C.cores()}; emulator on core 0, generator on core 1; {a.seconds:g} s per case, "
          f"{a.concurrency} in flight, {'converse_stream' if a.stream else 'converse'}, "
          f"{a.prefix_tokens}-token prefix; load average {C.load_average()}")
    # the baseline is a user's loop on asyncio's own event loop; loadgen's cases run on the
    # loop `loadgen run` uses (uvloop where installed: loadgen/engine/event_loop.py), and
    # each loop is also measured on the other side for a same-run comparison
    cases = ["bare", "bare+switches", "bare, uvloop", "transport", "loadgen", "loadgen, asyncio loop"] + \
        (["loadgen, no awscrt"] if a.crt else [])
    if a.cases:
        wanted = set(a.cases.split(";"))
        cases = ["bare"] + [c for c in cases if c in wanted and c != "bare"]  # the baseline always runs
    envs = {"bare": ASYNCIO, "bare+switches": ASYNCIO, "loadgen, asyncio loop": ASYNCIO,
            "loadgen, no awscrt": {"BOTO_DISABLE_CRT": "true"}}
    rounds: dict[str, list[dict]] = {k: [] for k in cases}
    with C.emulator() as url:
        for r in range(a.repeat):
            line = []
            for case in cases:
                extra = common + ["--url", url]
                if case.startswith("loadgen"):
                    extra += ["--rate", str(1.5 * rounds["bare"][-1]["rps"])]
                    if a.profile and r == 0 and case == "loadgen":
                        extra.append("--profile")
                res = C.run_child(__file__, ["--child", case.split(",")[0], *extra], env=envs.get(case, {}))
                rounds[case].append(res)
                line.append(f"{case} {res['cpu_us_per_req']:4.0f} us/req "
                            f"({rounds['bare'][-1]['cpu_us_per_req'] / res['cpu_us_per_req']:.3f} x)")
            print(f"round {r + 1}: " + "  ".join(line), flush=True)

    def best(k: str) -> dict:
        return min(rounds[k], key=lambda x: x["cpu_us_per_req"])

    base = best("bare")
    print(f"\nbest of {a.repeat} rounds by CPU per request (baseline: bare aiobotocore loop, "
          f"{base['cpu_us_per_req']:.0f} us CPU per request, {base['rps']:.0f} req/s); "
          f"x baseline = baseline CPU / case CPU (higher is cheaper); awscrt signing: "
          f"{'on' if base['crt'] else 'not installed'}")
    for k in cases:
        x = best(k)
        per_round = " ".join(f"{rb['cpu_us_per_req'] / rx['cpu_us_per_req']:.3f}"
                             for rb, rx in zip(rounds["bare"], rounds[k]))
        print(f"  {k:22s} {x['loop']:7s} {x['cpu_us_per_req']:5.0f} us CPU/req  {base['cpu_us_per_req'] / x['cpu_us_per_req']:.3f} x"
              f"   {x['rps']:7.0f} req/s ({x['rps'] / base['rps']:.3f} x)   per round {per_round}"
              f"   peak RSS {x['peak_rss_mb']:.0f} MB")
    print(f"load average after: {C.load_average()}")
    if a.no_pieces:
        return
    pcs = C.run_child(__file__, ["--pieces", *common])
    print(f"\nloadgen's own work per request (us, in-process, best of 5) vs the bare call's "
          f"{base['cpu_us_per_req']:.0f} us CPU:")
    for name, us in pcs.items():
        print(f"  {name:46s} {us:7.1f} us  {100 * us / base['cpu_us_per_req']:5.1f} %")


if __name__ == "__main__":
    main()
