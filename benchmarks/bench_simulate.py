"""How fast `loadgen simulate` runs: simulated requests (attempts) per second, one core.

Cases, each a ratio against a baseline measured in the same run:

  baseline     the emulator model alone: EmulatorModel.begin() + finish() in a loop over
               pre-built requests of the open-loop case (no runner, no event loop)
  runner       the open-loop case's runner alone: schedule, request building, the virtual
               clock, the attempt loop and its record (pricing, the Attempt), against a
               transport that answers every call after a fixed 2 s without a model, into
               a sink that keeps nothing
  metrics      Metrics.record alone, over the attempts of a 5-minute open-loop run
  floor        the open-loop case's per-attempt work with no runner and no event loop:
               schedule draw, request building, the cache model, EmulatorModel.begin()
               and finish(), the in-process transport's Outcome, pricing, the Attempt and
               Metrics.record, in a plain loop over the arrivals (responses finish in
               time order from a heap). No simulation loop around these same pieces can
               be faster, so it bounds what replacing the asyncio runner could gain
  slow-agent   scenarios/slow-agent.toml with 100 sessions in its 2 hours (50/h)
  open-50      50 requests/s open loop (Poisson, 5000-token cached prefix, streaming) for
               1 hour, quotas and Region capacity off: model + runner + metrics + the
               in-process transport between them

Rates are given per wall second and per CPU second of this process: on a machine shared
with other work the CPU figure moves less. Every case runs in this process, one after
the other, writing no files (the results writer is replaced by the in-memory ProbeState,
as --find-max-rate does); `--with-files` writes real results directories instead.
`--profile CASE` prints the cProfile top 30. `--only CASE` runs that case alone and prints
its attempts: under valgrind's callgrind, two durations give instructions per attempt, a
figure the machine's load does not move (docs/performance.md section 6):

  python benchmarks/bench_simulate.py [--open-duration 1h] [--with-files] [--profile open-50]
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
      python benchmarks/bench_simulate.py --only runner --open-duration 60s
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loadgen.engine.clock import VirtualClock  # noqa: E402
from loadgen.emulator.config import EmulatorConfig  # noqa: E402
from loadgen.emulator.model import EmulatorModel  # noqa: E402
from loadgen.results.directory import ResultsDir  # noqa: E402
from loadgen.api.session import ProbeState, RunState, new_metrics  # noqa: E402
from loadgen.engine.runner import Runner  # noqa: E402
from loadgen.engine.transport import Outcome  # noqa: E402
from loadgen.scenario import load, loads  # noqa: E402
from loadgen.api.setup import make_pricer  # noqa: E402
from loadgen.api.virtual import run_virtual  # noqa: E402
from loadgen.scenario.units import parse_duration  # noqa: E402
from loadgen.engine.workload import ArmWorkload, draw_sizes  # noqa: E402
from loadgen.engine import schedule  # noqa: E402
from loadgen.api.inprocess import _plan_outcome  # noqa: E402

OPEN = """
name = "open-50"
seed = 1
duration = "1h"
[target]
region = "us-east-1"
max_in_flight = 1024
[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 400
stream = true
[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = { dist = "uniform", low = 12, high = 40 }
output_tokens = { dist = "lognormal", median = 120, p90 = 300 }
[arrivals]
kind = "poisson"
rate = "50/s"
[[arms]]
name = "geo"
profile = "geo"
[emulator.quotas]
tpm = 0
[emulator.routing]
region_capacity_tpm = 0
"""


def open_scenario(duration: float):
    sc = loads(OPEN, str(REPO / "benchmarks" / "open-50.toml"))
    return dataclasses.replace(sc, duration=duration)


def slow_agent_scenario():
    sc = load(str(REPO / "scenarios" / "slow-agent.toml"))
    assert sc.sessions is not None
    arrival = dataclasses.replace(sc.sessions.arrival, rate=50 / 3600)  # 100 sessions in 2 h
    return dataclasses.replace(sc, sessions=dataclasses.replace(sc.sessions, arrival=arrival))


def baseline(n: int = 20000) -> tuple[int, float, float]:
    """(requests, wall s, CPU s) for the model alone on the open-loop case's requests."""
    sc = open_scenario(60.0)
    cfg = EmulatorConfig.from_mapping(sc.emulator)
    clock = VirtualClock()
    model = EmulatorModel(cfg, clock=clock, rng=random.Random(1), region=sc.target.region)
    wl = ArmWorkload(sc, sc.arms[0])
    bodies = []
    for i in range(n):
        params = dict(wl.single(i, draw_sizes(sc, random.Random(i))).params)
        bodies.append((params.pop("modelId"), params))
    t0, c0 = time.perf_counter(), time.process_time()
    for mid, body in bodies:
        clock._t += 0.02  # 50/s
        plan = model.begin(mid, body, stream=True)
        model.finish(plan)
    return n, time.perf_counter() - t0, time.process_time() - c0


class _FixedTransport:
    """Answers every call ok after 2 scenario seconds with a fixed usage: the runner's
    cost without the emulator model (the `runner` case)."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.usage = {"inputTokens": 20, "outputTokens": 120, "totalTokens": 5140,
                      "cacheReadInputTokens": 5000, "cacheWriteInputTokens": 0}

    async def call(self, params, *, stream, timeout, on_first_token=None, draw_key=None):
        start = self.clock.now()
        if on_first_token is not None:
            on_first_token(start + 0.5)
        await self.clock.sleep_until(start + 2.0)
        return Outcome(status="ok", start=start, end=self.clock.now(), first_token=start + 0.5,
                       usage=self.usage, region="us-east-1", request_id="r", stop_reason="end_turn",
                       text="x" * 480, http_status=200, delivered_tokens=120)


def runner_alone(sc) -> tuple[int, float, float]:
    """(attempts, wall s, CPU s) of the runner on `sc` with _FixedTransport and a sink that keeps nothing."""
    clock = VirtualClock()
    n = [0]

    def sink(a, costs) -> None:
        n[0] += 1

    async def main() -> None:
        await Runner(sc, _FixedTransport(clock), clock, sink=sink, pricer=make_pricer(sc)).run()

    w0, c0 = time.perf_counter(), time.process_time()
    anyio.run(main, backend_options={"loop_factory": clock.loop_factory})
    return n[0], time.perf_counter() - w0, time.process_time() - c0


def metrics_alone(sc) -> tuple[int, float, float]:
    """(attempts, wall s, CPU s) of Metrics.record over the attempts of a simulation of `sc`."""
    kept: list = []
    state = ProbeState(sc, VirtualClock(), on_attempt=kept.append)
    run_virtual(state, make_pricer(sc), EmulatorConfig.from_mapping(sc.emulator), signals=False)
    costs = [dict(input=0.0, output=0.0, cache_read=0.0, cache_write=0.0, total=a.cost_usd) for a in kept]
    m = new_metrics(sc)
    w0, c0 = time.perf_counter(), time.process_time()
    for a, c in zip(kept, costs):
        m.record(a, buckets=c)
    return len(kept), time.perf_counter() - w0, time.process_time() - c0


def floor(sc) -> tuple[int, float, float]:
    """(attempts, wall s, CPU s) of the open-loop case's per-attempt work in a plain loop
    (see the module doc): arrivals in order, each response finished at its end time."""
    import heapq  # deferred: this case only
    clock = VirtualClock()
    cfg = EmulatorConfig.from_mapping(sc.emulator)
    model = EmulatorModel(cfg, clock=clock, rng=random.Random(1), region=sc.target.region)
    m = new_metrics(sc)
    runner = Runner(sc, None, clock, sink=lambda a, c: m.record(a, buckets=c), pricer=make_pricer(sc))
    arm = runner.arms[0]
    wl = runner.workloads[arm.name]
    expect = runner.expect[arm.name]
    timeout = sc.target.request_timeout
    due: list = []  # (end, seq, plan, req, intended, pred, write, out)
    n = 0

    def finish_until(t: float) -> None:
        nonlocal n
        while due and due[0][0] <= t:
            end, _, plan, req, intended, pred, write, out = heapq.heappop(due)
            clock._t = end
            out.end = end
            model.finish(plan, output_tokens=out.delivered_tokens)
            runner._record(arm, req, intended, 1, write.finished(out.status, end, pred), 0.0, out)
            n += 1

    w0, c0 = time.perf_counter(), time.process_time()
    for i, offset, sizes in schedule.open_loop(sc):
        finish_until(offset)
        clock._t = offset
        req = wl.single(i, sizes)
        pred = expect.predict(req.checkpoints, offset)
        write = expect.sent(req.checkpoints, offset)
        plan = model.begin(req.model_id, req.params, stream=req.stream, draw_key=f"{i}:0:1")
        out, at, _ = _plan_outcome(plan, offset, req.stream)  # quotas off: no errors here
        assert at <= offset + timeout
        if out.first_token is not None:
            write.began(out.first_token)
        heapq.heappush(due, (at, i, plan, req, offset, pred, write, out))
    finish_until(float("inf"))
    return n, time.perf_counter() - w0, time.process_time() - c0


def run_case(sc, with_files: bool) -> tuple[int, float, float]:
    """(attempts, wall s, scenario s) for one simulation of `sc`."""
    cfg = EmulatorConfig.from_mapping(sc.emulator)
    pricer = make_pricer(sc)
    if with_files:
        tmp = tempfile.mkdtemp(prefix="bench-simulate-")
        out = ResultsDir.create(tmp, sc.name, dt.datetime.now(dt.timezone.utc))
        state = RunState(sc, VirtualClock(), out)
    else:
        out = None
        state = ProbeState(sc, VirtualClock())
    t0, c0 = time.perf_counter(), time.process_time()
    run_virtual(state, pricer, cfg, signals=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if out is not None:
        out.close()
    return state.metrics.snapshot().total.sent, wall, state.clock.now(), cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--open-duration", default="1h", help="scenario time of the open-loop case (default 1h)")
    ap.add_argument("--with-files", action="store_true", help="write results directories (requests.jsonl ...)")
    ap.add_argument("--profile", choices=["slow-agent", "open-50"], help="cProfile one case, print the top 30")
    ap.add_argument("--only", choices=["runner", "metrics", "floor", "open-50"],
                    help="run one case alone (open-50 and runner for --open-duration, metrics for 5 min) "
                         "and print its attempts")
    a = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    cases = {"slow-agent": slow_agent_scenario, "open-50": lambda: open_scenario(parse_duration(a.open_duration))}
    if a.only:
        only = {"runner": lambda: runner_alone(cases["open-50"]()),
                "metrics": lambda: metrics_alone(open_scenario(300.0)),
                "floor": lambda: floor(cases["open-50"]()),
                "open-50": lambda: run_case(cases["open-50"](), a.with_files)}
        print(f"{a.only}: {only[a.only]()[0]} attempts")
        return 0
    if a.profile:
        sc = cases[a.profile]()
        prof = cProfile.Profile()
        prof.enable()
        n, wall, _, _ = run_case(sc, a.with_files)
        prof.disable()
        print(f"{a.profile}: {n} attempts in {wall:.2f} s under cProfile")
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return 0

    n, wall, cpu = baseline()
    base = n / cpu
    print(f"python {sys.version.split()[0]}, files {'on' if a.with_files else 'off'}, "
          f"load average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores; ratios by CPU s")
    print(f"{'case':<12} {'attempts':>9} {'scenario s':>11} {'wall s':>8} {'req/wall s':>11} {'CPU s':>7} "
          f"{'req/CPU s':>10} {'x baseline':>11}")

    def row(name: str, n: int, scen: str, wall: float, cpu: float) -> None:
        print(f"{name:<12} {n:>9} {scen:>11} {wall:>8.2f} {n / wall:>11,.0f} {cpu:>7.2f} {n / cpu:>10,.0f} "
              f"{n / cpu / base:>11.3f}")

    row("baseline", n, "-", wall, cpu)
    row("runner", *(lambda r: (r[0], "-", r[1], r[2]))(runner_alone(cases["open-50"]())))
    row("metrics", *(lambda r: (r[0], "-", r[1], r[2]))(metrics_alone(open_scenario(300.0))))
    row("floor", *(lambda r: (r[0], "-", r[1], r[2]))(floor(cases["open-50"]())))
    for name, make in cases.items():
        n, wall, scen, cpu = run_case(make(), a.with_files)
        row(name, n, f"{scen:,.0f}", wall, cpu)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
