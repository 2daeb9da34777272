"""One execution segment of a split run, start to finish: the function every worker runs.

`loadgen run --workers N` runs `run_segment(spec)` in N local processes
(`api/executor.py`); a Ray executor runs the same function in Ray actors. Everything a
segment needs travels in its `SegmentSpec` (picklable: plain values, the `Overrides`
dataclass, and the coordinator handle); everything it produced comes back as a
`PartResult` and is also on disk in `spec.part_dir`:

    part_dir/requests.jsonl   every attempt, appended as it completes (handed to the
                              kernel at least every results.directory.FLUSH_EVERY_S, so
                              a killed worker's attempts are on disk but for the last few)
    part_dir/metrics.state    its Metrics at its end (results/merge.py), also in
                              PartResult.metrics_state

`run_segment` is synchronous (it runs its own event loop with `anyio.run`), prints
nothing and handles no signals: the caller decides (a local child ignores Ctrl-C and
follows the coordinator's control instead). It never raises for what happens to the
run: a target that fails is `PartResult.target_error`; only a bad spec raises.

What the worker does, in order: reads the scenario (`scenario_source` parsed as
`scenario_path`, the overrides applied as the parent applied them), opens its part, an
aiobotocore client on `endpoint_url` (None: AWS) and, against AWS, sizes each arm's
prefix with CountTokens; then tells the coordinator it is `ready`, waits for the start
instant (`start_instant`, or the coordinator's), and runs its segment of the schedule
on a SharedClock at `time_scale` from that instant. While it runs, it follows the
coordinator's control (stop, abort) every CONTROL_POLL_S and writes its progress row.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from loadgen.api.coordinator import ABORT, PROGRESS_FIELDS, STOP, Coordinator
from loadgen.api.setup import Overrides, apply_overrides, make_pricer
from loadgen.catalog.models import lookup
from loadgen.emulator.config import EmulatorConfig
from loadgen.engine import event_loop, prefix_sizing
from loadgen.engine.budget import SegmentBudget
from loadgen.engine.clock import SharedClock
from loadgen.engine.expectations import CacheExpectations
from loadgen.engine.runner import Limits, Runner
from loadgen.engine.schedule import Segment
from loadgen.engine.transport import BedrockTransport, TargetError
from loadgen.results.directory import ResultsDir
from loadgen.results.merge import metrics_state, write_part_metrics
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import loads

CONTROL_POLL_S = 0.05   # real seconds between looks at the coordinator's control
REPORT_EVERY_S = 0.5    # real seconds between progress rows


@dataclass(frozen=True)
class SegmentSpec:
    """Everything one segment's worker needs; picklable (a process argument, a Ray task).

    scenario_path:   the scenario file's path (error messages; data files such as a trace
                     are read relative to it, so a remote machine needs them there)
    scenario_source: the file's exact text, as the parent read it
    overrides:       the command's flags (`api.setup.Overrides`), applied as the parent did
    index, count:    this segment, `engine.schedule.Segment(index, count)`
    endpoint_url:    the bedrock-runtime endpoint to call: the run's emulator process or
                     `--endpoint-url`; None for AWS (the standard credential chain)
    time_scale:      scenario seconds per real second (1.0: the real clock)
    start_instant:   Unix time of scenario second 0, or None to wait for the coordinator's
    coordinator:     the run's Coordinator (api/coordinator.py): budget, start, control, progress
    part_dir:        the directory this worker creates and writes its part into
    salt:            the run's prefix salt (the results directory's name) against AWS, so
                     every worker sends the same bytes and shares the prompt cache; "" otherwise
    max_requests, max_cost_usd: the run's limits (None: unset), held by the coordinator
    usd_chunk:       USD a worker may hold beyond its in-flight worst case (engine/budget.py);
                     0 for a shared-memory coordinator, more for a remote one
    grace_s:         wall seconds in-flight requests get after a stop before an abort
    """

    scenario_path: str
    scenario_source: str
    overrides: Overrides
    index: int
    count: int
    endpoint_url: str | None
    time_scale: float
    start_instant: float | None
    coordinator: Any
    part_dir: str
    salt: str = ""
    max_requests: int | None = None
    max_cost_usd: float | None = None
    usd_chunk: float = 0.0
    grace_s: float = 5.0


@dataclass(frozen=True)
class PartResult:
    """What one segment's worker returns (picklable).

    attempts:      attempts it wrote to part_dir/requests.jsonl
    metrics_state: its Metrics (`results.merge.load_metrics` reads them); None if it failed
                   before running
    stop_reason:   why its runner stopped early (None: its segment ran to the end)
    target_error:  the target failed (no credentials, unreachable): the run exits 3
    error:         an unexpected failure (a traceback); its written attempts still count
    """

    index: int
    part_dir: str
    attempts: int
    metrics_state: bytes | None
    stop_reason: str | None = None
    target_error: str | None = None
    error: str | None = None


def run_segment(spec: SegmentSpec) -> PartResult:
    """Run segment `spec.index` of `spec.count` and write its part (see the module doc)."""
    return event_loop.run(_run_segment, spec)


def segment_scenario(spec: SegmentSpec) -> Any:
    """The scenario as the parent ran it: the source parsed, the flags applied."""
    sc = loads(spec.scenario_source, spec.scenario_path, check_emulator=EmulatorConfig.from_mapping)
    return apply_overrides(sc, spec.overrides)


async def _run_segment(spec: SegmentSpec) -> PartResult:
    co: Coordinator = spec.coordinator
    part = Path(spec.part_dir)
    part.mkdir(parents=True, exist_ok=True)
    out = ResultsDir(part)
    metrics = None
    runner: Runner | None = None
    readied = False
    try:
        sc = segment_scenario(spec)
        metrics = Metrics([ArmInfo.from_arm(a) for a in sc.arms])  # as session.new_metrics, without its imports
        aws = sc.target.kind == "aws"
        clock = SharedClock(spec.time_scale, spec.start_instant if spec.start_instant is not None
                            else co.start_instant)

        def sink(a: Any, costs: Any) -> None:
            out.append(a)
            metrics.record(a, buckets=costs)

        segment = Segment(spec.index, spec.count)
        budget = SegmentBudget(co, segment, [a.name for a in sc.arms], max_requests=spec.max_requests,
                               max_cost_usd=spec.max_cost_usd, open_loop=sc.arrivals is not None,
                               chunk_usd=spec.usd_chunk)
        async with BedrockTransport.open(clock, region=sc.target.region, endpoint_url=spec.endpoint_url,
                                         max_connections=sc.target.max_in_flight * len(sc.arms),
                                         dummy_credentials=not aws) as transport:
            sizes = await prefix_sizing.measure(transport.client, sc, salt=spec.salt) if aws else None
            runner = Runner(sc, transport, clock, sink=sink, pricer=make_pricer(sc),
                            limits=Limits(spec.max_requests, spec.max_cost_usd, spec.grace_s),
                            salt=spec.salt if aws else "", prefix_sizes=sizes, segment=segment,
                            expectations=_cache_models(sc, runner_arms(sc), spec.count), budget=budget)
            co.ready(spec.index)
            readied = True
            if spec.start_instant is None:
                await anyio.to_thread.run_sync(co.wait_for_start)
            if co.control()[0] != ABORT:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_follow, co, spec.index, runner, metrics)
                    await runner.run()
                    tg.cancel_scope.cancel()
        return _finish(spec, out, metrics, runner, None)
    except TargetError as e:
        return _finish(spec, out, metrics, runner, str(e), target=True)
    except Exception:
        return _finish(spec, out, metrics, runner, traceback.format_exc(limit=20))
    finally:
        out.close()
        if not readied:
            co.ready(spec.index)  # never keep the others waiting for a worker that cannot start


def runner_arms(sc: Any) -> tuple[Any, ...]:
    return tuple(a for a in sc.arms if getattr(a, "mode", "on_demand") != "batch")


def _cache_models(sc: Any, arms: tuple[Any, ...], count: int) -> dict[str, CacheExpectations]:
    """One client-side cache model per arm. Split over processes, a segment cannot see
    the prefixes other segments cache (the system prompt every session shares), so its
    model says so: a cold prediction on such a prefix is a race, not a mismatch."""
    return {a.name: CacheExpectations(lookup(a.model_id).cache_min_tokens, others_write_shared=count > 1)
            for a in arms}


def _row(metrics: Any, runner: Runner | None, finished: bool) -> list[float]:
    t = metrics.snapshot().total
    # rpm/tpm as one process's status line counts them (Metrics.recent: the last 60
    # scenario seconds): the parent sums the workers' windows, which share scenario
    # second 0, so the split line shows the figure one process would
    rate = metrics.recent(runner.clock.now()) if runner is not None else None
    values = {"sent": t.sent, "ok": t.ok, "throttled": t.throttled, "failed": t.error + t.timeout,
              "warm": t.warm, "cold": t.cold, "cost_usd": t.cost_usd,
              "in_flight": runner.in_flight if runner is not None and not finished else 0,
              "rpm": rate.rpm if rate is not None else 0.0, "tpm": rate.tpm if rate is not None else 0.0,
              "finished": 1.0 if finished else 0.0}
    return [values[f] for f in PROGRESS_FIELDS]


async def _follow(co: Coordinator, index: int, runner: Runner, metrics: Any) -> None:
    """Apply the coordinator's control to the runner and publish progress, until cancelled."""
    reported = float("-inf")
    told_target = False
    while True:
        code, why = co.control()
        if code == ABORT:
            runner.abort()
        elif code == STOP and not runner.stopping:
            runner.stop(why or "interrupted")
        if not runner.stopping:
            ex = co.exhausted()
            if ex is not None:
                runner.stop(ex)
        if runner.target_error is not None and not told_target:
            told_target = True
            co.stop("target-failed")
        now = anyio.current_time()
        if now - reported >= REPORT_EVERY_S:
            reported = now
            co.report(index, _row(metrics, runner, False))
        await anyio.sleep(CONTROL_POLL_S)


def _finish(spec: SegmentSpec, out: ResultsDir, metrics: Any, runner: Runner | None, problem: str | None, *,
            target: bool = False) -> PartResult:
    out.close()
    state = None
    if metrics is not None:
        write_part_metrics(spec.part_dir, metrics)
        state = metrics_state(metrics)
        spec.coordinator.report(spec.index, _row(metrics, runner, True))
    if runner is not None and runner.target_error is not None and problem is None:
        problem, target = str(runner.target_error), True
    if target:
        spec.coordinator.stop("target-failed")
    return PartResult(spec.index, spec.part_dir, out.attempts_written, state,
                      stop_reason=runner.stop_reason if runner is not None else None,
                      target_error=problem if target else None, error=None if target else problem)

