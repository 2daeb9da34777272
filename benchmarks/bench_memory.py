"""Memory of whole loadgen commands, and of the run loop alone.

Whole commands (the default): each case is a fresh `python -m loadgen ...` process; its
peak RSS is the kernel's (`os.wait4` rusage `ru_maxrss` of that child), so it covers
everything the user waits for: the run, summary.json, the four plots and report.html.

  baseline   `python -c "import loadgen.api"`: the interpreter and loadgen's imports.
  simulate   `loadgen simulate` of an open-loop scenario (Poisson at 1000/s, fast
             emulator model, quotas off) at 10k, 50k and 100k requests.
  run        `loadgen run` of the same scenario at `--rate` (default 700/s, below one
             core's ceiling) on the built-in emulator, at 10k, 50k and 100k requests.
  plan       `loadgen validate` of an AWS-target scenario of 600 s x 4,000/s (2.4M
             requests per arm, three arms): wall time and peak RSS.

Target (issue 14): every command under 200 MB at 100k requests and flat in run length;
the 2.4M-request plan in seconds and under 200 MB.

The run loop alone (`--run-loop`): `api.session.drive` in a child process on a RealClock
against the emulator on core 0, RSS over run length, per request in flight and per
request waiting for a slot (the figures before issue 14).

    python benchmarks/bench_memory.py [--sizes 10000,50000,100000] [--rate 700] [--skip-run]
    python benchmarks/bench_memory.py --run-loop [--requests 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SLOW_EMULATOR = C.EMULATOR_CONFIG.replace('latency = "fast"', 'latency = { preset = "fast", ttft_s = %s }')


# ---- child side ---------------------------------------------------------------------


async def _drive(url: str, *, rate: float, requests: int, max_in_flight: int, samples: int = 10,
                 sample_every_s: float | None = None) -> dict:
    import datetime as dt
    import tempfile

    import anyio

    from loadgen.engine.clock import RealClock
    from loadgen.results.directory import ResultsDir
    from loadgen.api.session import RunState, drive
    from loadgen.api.setup import make_pricer
    from loadgen.engine.runner import Limits
    from loadgen.engine.transport import BedrockTransport

    sc = C.load_scenario(C.scenario_text(rate=rate, duration_s=requests / rate * 10 + 60,
                                         max_in_flight=max_in_flight), url)
    rss: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        out = ResultsDir.create(d, sc.name, dt.datetime.now(dt.timezone.utc))
        clock = RealClock()
        state = RunState(sc, clock, out)
        step = max(1, requests // samples)
        sink = state.sink

        def sampling_sink(a, costs) -> None:
            sink(a, costs)
            if out.attempts_written % step == 0:
                rss.append((out.attempts_written, C.rss_mb()))

        state.sink = sampling_sink  # type: ignore[method-assign]
        peak_in_flight = 0
        rss_before = C.rss_mb()
        async with BedrockTransport.open(clock, region=C.REGION, endpoint_url=url, max_connections=max_in_flight,
                                         dummy_credentials=True) as transport:
            async def watch() -> None:
                nonlocal peak_in_flight
                while True:
                    await anyio.sleep(sample_every_s or 0.25)
                    r = state.runner
                    if r is not None:
                        peak_in_flight = max(peak_in_flight, r.in_flight)
                        if sample_every_s:
                            rss.append((r.in_flight, C.rss_mb()))

            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await drive(state, transport, make_pricer(sc), limits=Limits(max_requests=requests), signals=False)
                tg.cancel_scope.cancel()
        out.close()
        ok = state.metrics.snapshot().total.ok
    return {"rss": rss, "ok": ok, "peak_in_flight": peak_in_flight, "peak_rss_mb": C.peak_rss_mb(),
            "rss_before_mb": rss_before}


async def _bare_held(url: str, n: int, hold: float) -> dict:
    """n concurrent converse calls held open by the emulator; RSS while they wait."""
    import anyio
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    sc = C.load_scenario(C.scenario_text(rate=1, duration_s=60, max_in_flight=n), url)
    import random

    from loadgen.engine.workload import ArmWorkload, draw_sizes
    params = ArmWorkload(sc, sc.arms[0]).single(0, draw_sizes(sc, random.Random(0))).params
    config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=max(10, n),
                       read_timeout=300, connect_timeout=10, tcp_keepalive=True)
    async with get_session().create_client("bedrock-runtime", region_name=C.REGION, endpoint_url=url,
                                           config=config, aws_access_key_id="x", aws_secret_access_key="x") as client:
        await client.converse(**params)
        in_flight = 0
        peak = 0.0

        async def one() -> None:
            nonlocal in_flight
            in_flight += 1
            await client.converse(**params)
            in_flight -= 1

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)
            await anyio.sleep(hold * 0.7)
            peak = C.rss_mb()
            held = in_flight
    return {"rss_mb": peak, "held": held}


def child(a: argparse.Namespace) -> None:
    import anyio

    C.pin(1)
    if a.child == "length":
        res = anyio.run(lambda: _drive(a.url, rate=a.rate, requests=a.requests, max_in_flight=64))
    elif a.child == "inflight":
        # RSS while N are held: sample every 0.2 s; keep samples taken with >= 90 % of N in flight
        res = anyio.run(lambda: _drive(a.url, rate=a.n / a.hold, requests=int(a.n / a.hold * a.hold * 3),
                                       max_in_flight=a.n + 64, sample_every_s=0.2))
        held = [r for n, r in res["rss"] if n >= 0.9 * a.n]
        res = {"rss_mb": max(held) if held else None, "held": res["peak_in_flight"]}
    elif a.child == "bare-held":
        res = anyio.run(_bare_held, a.url, a.n, a.hold)
    elif a.child == "backlog":
        res = anyio.run(lambda: _drive(a.url, rate=a.rate, requests=a.requests, max_in_flight=32,
                                       sample_every_s=0.1))
    else:
        raise SystemExit(f"unknown child {a.child}")
    C.emit(res)


# ---- parent -----------------------------------------------------------------------------


COMMAND_SCENARIO = """\
name = "bench-memory"
seed = 1
duration = "{duration}"

[target]
region = "{region}"
max_in_flight = 256
{target}
[model]
id = "{model}"
max_tokens = 256
stream = false

[workload]
kind = "single"
prefix_tokens = 4200
question_tokens = {{ dist = "uniform", low = 12, high = 40 }}
output_tokens = {{ dist = "lognormal", median = 120, p90 = 300 }}

[arrivals]
kind = "poisson"
rate = "{rate}/s"
{emulator}{arms}"""

ONE_ARM = '\n[[arms]]\nname = "a"\n'
THREE_ARMS = '\n[[arms]]\nname = "region"\nprofile = "region"\n\n[[arms]]\nname = "geo"\nprofile = "geo"\n' \
             '\n[[arms]]\nname = "global"\nprofile = "global"\n'


def command_scenario(d: str, *, rate: float, duration_s: float, aws: bool = False) -> str:
    """A scenario file in `d` for the whole-command cases; returns its path."""
    text = COMMAND_SCENARIO.format(
        duration=f"{C._num(duration_s)}s", region=C.REGION, model=C.MODEL_ID, rate=C._num(rate),
        target='kind = "aws"\n' if aws else "",
        emulator="" if aws else "\n" + C.EMULATOR_CONFIG, arms=THREE_ARMS if aws else ONE_ARM)
    path = os.path.join(d, f"{'aws' if aws else 'emu'}-{int(rate * duration_s)}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def measure(cmd: list[str], cwd: str) -> dict:
    """Run `cmd`; (peak RSS in MB of that process alone, wall seconds, exit code, last stdout lines)."""
    env = {**os.environ, **C.CHILD_ENV}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env, text=True,
                            preexec_fn=lambda: C.pin(1))
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"rss_mb": usage.ru_maxrss / 1024, "wall_s": time.monotonic() - t0, "rc": proc.returncode,
            "tail": out.strip().splitlines()[-3:]}


def commands(a: argparse.Namespace) -> None:
    py = sys.executable
    sizes = [int(x) for x in a.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        base = measure([py, "-c", "import loadgen.api"], d)
        print(f"baseline: python -c 'import loadgen.api': peak RSS {base['rss_mb']:.1f} MB")
        kinds = [("simulate", 1000.0)] + ([] if a.skip_run else [("run", a.rate)])
        for kind, rate in kinds:
            print(f"\nloadgen {kind} (whole command: run, summary, plots, report.html; Poisson at {rate:g}/s):")
            rows = []
            for n in sizes:
                path = command_scenario(d, rate=rate, duration_s=n / rate)
                r = measure([py, "-m", "loadgen", kind, path, "--out", os.path.join(d, "out"), "--quiet"], d)
                if r["rc"] not in (0, 1):
                    raise SystemExit(f"loadgen {kind} failed ({r['rc']}): {r['tail']}")
                rows.append((n, r))
                print(f"  {n:7,d} requests  peak RSS {r['rss_mb']:6.1f} MB  ({r['rss_mb'] / base['rss_mb']:.2f} x baseline)"
                      f"  wall {r['wall_s']:6.1f} s")
            (n0, r0), (n1, r1) = rows[0], rows[-1]
            print(f"  growth {(r1['rss_mb'] - r0['rss_mb']) / max(1, n1 - n0) * 10_000:+.2f} MB per 10k requests "
                  f"from {n0:,} to {n1:,} (target: < 200 MB at 100k, flat)")
        path = command_scenario(d, rate=4000.0, duration_s=600.0, aws=True)
        print("\nloadgen validate, AWS target, 600 s x 4,000/s Poisson, 3 arms (2.4M requests per arm):")
        for _ in range(a.repeat):
            r = measure([py, "-m", "loadgen", "validate", path], d)
            if r["rc"] != 0:
                raise SystemExit(f"loadgen validate failed ({r['rc']}): {r['tail']}")
            print(f"  wall {r['wall_s']:5.1f} s  peak RSS {r['rss_mb']:6.1f} MB ({r['rss_mb'] / base['rss_mb']:.2f} x baseline)")
        r = measure([py, "-c", "import loadgen.commands.validate"], d)
        print(f"  of which imports alone: wall {r['wall_s']:5.1f} s  peak RSS {r['rss_mb']:6.1f} MB")


def run_loop(a: argparse.Namespace) -> None:
    me = os.path.abspath(__file__)
    print(f"cores: {C.cores()}; emulator on core 0, generator on core 1")
    with C.emulator() as url:
        t0 = time.monotonic()
        r = C.run_child(me, ["--child", "length", "--url", url, "--requests", str(a.requests),
                             "--rate", str(a.rate)], timeout=a.requests / a.rate * 5 + 300)
    base = r["rss"][0][1]
    print(f"\nRSS over run length ({a.requests} requests at {a.rate:g}/s, {time.monotonic() - t0:.0f} s; "
          f"baseline: RSS after {r['rss'][0][0]} requests = {base:.1f} MB):")
    for n, mb in r["rss"]:
        print(f"  {n:7d} requests  {mb:6.1f} MB  {mb / base:.3f} x baseline")
    slope = (r["rss"][-1][1] - base) / max(1, r["rss"][-1][0] - r["rss"][0][0]) * 10_000
    print(f"  growth {slope:+.2f} MB per 10k requests; peak RSS {r['peak_rss_mb']:.1f} MB (target: 200 MB at 100k)")

    with C.emulator(config=SLOW_EMULATOR % a.hold) as url:
        res = {}
        for kind in ("bare-held", "inflight"):
            for n in (10, 1000):
                res[(kind, n)] = C.run_child(me, ["--child", kind, "--url", url, "--n", str(n), "--hold", str(a.hold)])
    print(f"\nmemory per request in flight (emulator holds each answer {a.hold:g} s; RSS at 1000 minus RSS at 10):")
    per = {}
    for kind, name in (("bare-held", "bare aiobotocore (baseline)"), ("inflight", "loadgen run")):
        lo, hi = res[(kind, 10)], res[(kind, 1000)]
        per[kind] = (hi["rss_mb"] - lo["rss_mb"]) * 1024 / (hi["held"] - lo["held"])
        print(f"  {name:28s} {lo['rss_mb']:6.1f} MB at {lo['held']}, {hi['rss_mb']:6.1f} MB at {hi['held']}: "
              f"{per[kind]:5.1f} KB per request in flight")
    print(f"  loadgen / baseline: {per['inflight'] / per['bare-held']:.2f} x")

    with C.emulator() as url:
        r = C.run_child(me, ["--child", "backlog", "--url", url, "--requests", "20000", "--rate", "20000"])
    print(f"\nbacklog (open loop at 20000/s, max_in_flight 32, 20000 requests): RSS {r['rss_before_mb']:.1f} MB "
          f"before the run (baseline), peak {r['peak_rss_mb']:.1f} MB ({r['peak_rss_mb'] / r['rss_before_mb']:.1f} x); "
          f"about {(r['peak_rss_mb'] - r['rss_before_mb']) * 1024 / 20000:.1f} KB per request waiting for a slot")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000,100000", help="requests per whole-command case, comma-separated")
    ap.add_argument("--rate", type=float, default=700.0, help="open-loop rate of `run` cases (req/s)")
    ap.add_argument("--skip-run", action="store_true", help="whole commands: simulate and validate only")
    ap.add_argument("--repeat", type=int, default=2, help="validate runs (times vary on a shared machine)")
    ap.add_argument("--run-loop", action="store_true", help="the run loop alone: length, in flight, backlog")
    ap.add_argument("--requests", type=int, default=100_000, help="--run-loop: run length")
    ap.add_argument("--hold", type=float, default=2.0, help="--run-loop: emulator answer delay, s")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=10, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    if a.run_loop:
        return run_loop(a)
    return commands(a)


if __name__ == "__main__":
    main()
