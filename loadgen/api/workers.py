"""`loadgen run --workers N` (N > 1): the parent of a run split into execution segments.

The parent sends nothing itself. It:
1. picks the clock every process shares (`SharedClock`: real against AWS or an
   endpoint, else scaled at `[target] time_scale` without idle jumps, since processes
   cannot agree on a jump) and writes run.json saying so;
2. starts the built-in emulator in its own process (api/emulator_process.py) unless the
   run calls AWS or `--endpoint-url`;
3. launches one worker per segment through an executor (api/executor.py: local
   processes; a Ray executor launches the same `segment_worker.run_segment`), each with
   a `SegmentSpec` naming its part directory `<run>/parts/worker-<i>/`;
4. fixes the start instant once every worker is ready, then shows one progress line
   for all of them and reports a worker that dies. From its first step on (a cluster's
   coordinator and actors take seconds to come up) it turns Ctrl-C into the
   coordinator's STOP (then ABORT after the grace period, or at a second Ctrl-C); a
   Ctrl-C before the workers are launched launches none, and the run ends "interrupted"
   with what was sent (nothing) as any interrupted run;
5. merges the parts (results/merge.py): Metrics added (from each PartResult, else its
   metrics.state, else rebuilt from its requests.jsonl), requests.jsonl concatenated;
   then writes summary.json and the rest as any run does (`session.finish`).

With `--output jsonl` or CloudWatch the parent also reads the parts' requests.jsonl as
they grow (results/part_tail.py) into one interval aggregator (api/outputs.py), so the
stream, the datums and the HDR interval logs hold every worker's attempts, interval by
interval, as one process's run would; an interval closes once every part's lines have
been read past its end (a part that wrote nothing newer counts as read to PART_DELAY_S
of real time ago: the longest an attempt takes to reach the parent). Without them
nothing is read while the run goes (the parent stays off the cores the workers use)
and the histograms are the merged parts' whole-run ones.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import anyio

from loadgen.api.coordinator import ABORT, CONTINUE, start_in
from loadgen.api.emulator_process import EmulatorProcess
from loadgen.api.executor import Executor, Launched, LocalProcessExecutor, PartOutcome
from loadgen.api.outputs import OutputFlags, RunOutputs, cloudwatch_config
from loadgen.api.progress import WorkersProgress
from loadgen.api.result import RunResult
from loadgen.api.segment_worker import SegmentSpec
from loadgen.api.session import RunState, finish, new_metrics
from loadgen.api.setup import Overrides, Prepared, real_clock_reason
from loadgen.api.signals import notice
from loadgen.engine.clock import SharedClock
from loadgen.engine.runner import Limits
from loadgen.engine.transport import TargetError
from loadgen.results.directory import ResultsDir, load_attempts
from loadgen.results.merge import load_metrics, merge_requests, part_dir, read_part_metrics, remove_parts
from loadgen.results.part_tail import PartTail
from loadgen.results.rebuild import rebuild_summary
from loadgen.scenario import Scenario

START_WAIT_S = 120.0      # real seconds the parent waits for every worker to be ready
START_MARGIN_S = 0.05     # real seconds between fixing the start instant and scenario second 0
KILL_AFTER_ABORT_S = 10.0  # real seconds an aborted worker gets to write its part before it is killed
# real seconds between the parent's looks at its workers: each look wakes the parent on a
# core the workers and the emulator are busy on (0.02 s cost ~1 % of a core, loaded machine)
POLL_S = 0.1
WORKER_DIED = "worker-died"  # summary.json `stopped` when a worker ended without its part
# real seconds from an attempt's end to the parent reading it, at most: the worker's requests.jsonl
# reaches the disk at least every second (directory.FLUSH_EVERY_S), a Ray segment's lines
# are pulled every 0.5 s, the parent looks every outputs.TICK_S; plus a margin
PART_DELAY_S = 3.0


def workers_problem(sc: Scenario, workers: int, flag: str = "--workers") -> str | None:
    """Why `sc` cannot run split over `workers` processes (`flag` "--cluster": on Ray, any
    number of them), or None."""
    split = workers > 1 or flag != "--workers"
    if split and any(getattr(a, "mode", "on_demand") == "batch" for a in sc.arms):
        return (f"{flag}: batch arms run in one process (a batch job is one upload, not a share of "
                f"the schedule); drop {flag} or the batch arms (--arm)")
    return None


def shared_scale(sc: Scenario) -> float:
    """Scenario seconds per real second on the shared clock: 1 where the target keeps real
    time, else the scenario's time_scale."""
    return 1.0 if real_clock_reason(sc) else float(sc.target.time_scale)


async def run_workers(ready: Prepared, results: ResultsDir, overrides: Overrides, *, workers: int,
                      limits: Limits, progress: Callable[[str], None] | None, status: TextIO | None,
                      signals: bool, executor: Executor | None = None,
                      header: Callable[..., str] | None = None, outputs: OutputFlags | None = None) -> RunResult:
    """Run `ready.scenario` split over `workers` segments into `results` (module doc).
    `outputs`: `--output` (the jsonl interval stream, CloudWatch), fed from the parts."""
    sc = ready.scenario
    executor = executor or LocalProcessExecutor()
    where = getattr(executor, "where", None)   # a cluster (Ray): said in the header and run.json
    problem = workers_problem(sc, workers, "--cluster" if where else "--workers")
    if problem:
        raise ValueError(problem)
    # Ctrl-C is watched from before the coordinator exists: a cluster's coordinator and
    # actors can take seconds to come up, and a Ctrl-C then must still end as any other
    # (the run stops, nothing started is lost, summary.json says "interrupted")
    with _interrupts(signals) as received:
        co = executor.coordinator(workers, len(sc.arms), limits.max_requests, limits.max_cost_usd)
        failed: Exception | None = None
        async with anyio.create_task_group() as tg:
            if received is not None:
                tg.start_soon(_watch_signals, co, limits.grace_s, received)
            try:
                result = await _run_split(co, ready, results, overrides, executor, workers=workers, limits=limits,
                                          progress=progress, status=status, header=header, outputs=outputs)
            except Exception as e:  # raised as it is, not inside the task group's ExceptionGroup
                failed = e
            tg.cancel_scope.cancel()
    if failed is not None:
        raise failed
    return result


async def _run_split(co: Any, ready: Prepared, results: ResultsDir, overrides: Overrides, executor: Executor, *,
                     workers: int, limits: Limits, progress: Callable[[str], None] | None, status: TextIO | None,
                     header: Callable[..., str] | None, outputs: OutputFlags | None) -> RunResult:
    sc = ready.scenario
    where = getattr(executor, "where", None)
    ready_wait = getattr(executor, "coordinator_ready", None)
    unreached: TargetError | None = None
    if ready_wait is not None:  # a remote coordinator (Ray's) answers before any segment starts
        try:
            await _coordinator_ready(ready_wait, co)
        except TargetError as e:  # it did not: the run ends as a failed target's, nothing sent
            unreached = e
    scale = shared_scale(sc)
    clock = SharedClock(scale, co.start_instant)
    # no interval outputs fed attempt by attempt (this process records none): with --output
    # they are fed from the parts below, else session.finish writes the merged whole-run
    # histograms
    state = RunState(sc, clock, results, extra_facts={"workers": workers, **({"cluster": where} if where else {})},
                     interval_outputs=False)
    tail: PartTail | None = None
    if (outputs is not None and outputs.jsonl is not None) or cloudwatch_config(sc, outputs) is not None:
        # the live outputs, from the parts as they grow (module doc); the whole-run Metrics
        # still come from the parts' own at the end
        state.outputs = RunOutputs(sc, results.path, state.wall_start, outputs, close_on_record=False)
        tail = PartTail([part_dir(results.path, i) for i in range(workers)], sc)
    if progress is not None and header is not None:
        progress(header(sc, clock, real_clock_reason(sc), results.path, workers=workers,
                        **({"cluster": where} if where else {})))
    aws = sc.target.kind == "aws"
    outcomes: list[PartOutcome] = []
    try:
        if unreached is not None:
            raise unreached
        async with _endpoint(executor, ready, scale, co) as url:
            if co.control()[0] == CONTINUE:  # else Ctrl-C came before any segment started: none is launched
                specs = [SegmentSpec(scenario_path=str(sc.path), scenario_source=sc.source, overrides=overrides,
                                     index=i, count=workers, endpoint_url=url, time_scale=scale, start_instant=None,
                                     coordinator=co, part_dir=str(part_dir(results.path, i)),
                                     salt=results.path.name if aws else "", max_requests=limits.max_requests,
                                     max_cost_usd=limits.max_cost_usd, grace_s=limits.grace_s)
                         for i in range(workers)]
                launched = [executor.launch(s) for s in specs]
                outcomes = await _supervise(co, launched, clock, sc, status=status,
                                            outputs=state.outputs if tail is not None else None, tail=tail)
    except TargetError as e:
        if tail is not None and state.outputs is not None:
            _feed(state.outputs, tail, last=True)
        result = finish(state, stop_reason="target-failed")
        result.target_error = e
        return result
    return _merge_and_finish(state, co, outcomes)


def _interrupts(signals: bool) -> Any:
    """A receiver of Ctrl-C and SIGTERM (installed on entry), or nothing when `signals` is False."""
    return anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) if signals else contextlib.nullcontext()


async def _coordinator_ready(wait: Callable[[Any], None], co: Any) -> None:
    """`wait(co)` (blocking: until a remote coordinator answers) on a thread of its own, the
    event loop free meanwhile; given up once the run is aborted (Ctrl-C twice, or once and
    the grace period, on a cluster that does not answer). What `wait` raises is raised here."""
    outcome: list[Exception | None] = []

    def waited() -> None:
        try:
            wait(co)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - handed to the event loop's side
            outcome.append(e)

    threading.Thread(target=waited, name="loadgen-coordinator-ready", daemon=True).start()
    while not outcome and co.control()[0] != ABORT:
        await anyio.sleep(POLL_S)
    if outcome and outcome[0] is not None:
        raise outcome[0]


def _feed(outputs: RunOutputs, tail: PartTail, *, last: bool = False) -> None:
    """Record the attempts the workers wrote since the last read (`last`: the final read,
    once every worker has ended; a torn last line left out)."""
    for a, costs in (tail.finish() if last else tail.read()):
        outputs.record(a, costs)


class _endpoint:
    """The URL workers call: the emulator process (built-in target), else the scenario's
    endpoint_url, else None (AWS)."""

    def __init__(self, executor: Executor, ready: Prepared, scale: float, co: Any) -> None:
        self._proc: EmulatorProcess | None = None
        sc = ready.scenario
        if ready.emulator is not None:
            if executor.context is None:
                raise ValueError("--workers: this executor cannot host the built-in emulator; pass --endpoint-url")
            # a coordinator that cannot travel to a local process (Ray's) offers what the
            # emulator reads instead: the start instant in shared memory
            view = co.for_emulator() if hasattr(co, "for_emulator") else co
            self._proc = EmulatorProcess(executor.context, ready.emulator, seed=sc.seed, region=sc.target.region,
                                         scale=scale, coordinator=view)
        self._url = sc.target.endpoint_url

    async def __aenter__(self) -> str | None:
        if self._proc is not None:
            return await self._proc.__aenter__()
        return self._url

    async def __aexit__(self, *exc: Any) -> None:
        if self._proc is not None:
            await self._proc.__aexit__(*exc)


async def _supervise(co: Any, launched: Sequence[Launched], clock: SharedClock, sc: Scenario, *,
                     status: TextIO | None, outputs: RunOutputs | None = None,
                     tail: PartTail | None = None) -> list[PartOutcome]:
    """Start the workers together, show progress, collect every outcome (Ctrl-C reaches them
    through `co`: run_workers watches it).
    `outputs` ticks meanwhile, fed the attempts `tail` reads from the parts before each
    look; once every worker has ended, the last ones, and its last intervals are drained
    (CloudWatch's sender runs in this task group)."""
    outcomes: dict[int, PartOutcome] = {}
    told: set[int] = set()
    view = WorkersProgress(co, len(launched), clock, duration=sc.duration, quiet=status is None, stream=status)

    def collect() -> None:
        for h in launched:
            if h.index not in outcomes:
                o = h.poll()
                if o is not None:
                    outcomes[h.index] = o
                    if o.result is None and h.index not in told:
                        told.add(h.index)
                        notice(f"worker {h.index} ended without its part ({o.failure}); the attempts it "
                               "wrote still count")

    async with anyio.create_task_group() as tg:
        deadline = time.monotonic() + START_WAIT_S
        while co.ready_count() < len(launched) and time.monotonic() < deadline:
            collect()
            if len(outcomes) == len(launched) or co.control()[0] == ABORT:
                break
            await anyio.sleep(POLL_S)
        if co.start_instant() is None:
            co.set_start(start_in(START_MARGIN_S))
        tg.start_soon(view.run)
        if outputs is not None and tail is not None:
            def tick(now: float) -> float:
                _feed(outputs, tail)
                # the aggregator's own grace is kept below this: a margin for ends out of order
                return tail.read_until(now - clock.scale * PART_DELAY_S)
            tg.start_soon(outputs.run, clock, tick)
        aborted_at: float | None = None
        while len(outcomes) < len(launched):
            collect()
            if co.control()[0] == ABORT:
                aborted_at = aborted_at or time.monotonic()
                if time.monotonic() - aborted_at > KILL_AFTER_ABORT_S:
                    for h in launched:
                        if h.index not in outcomes:
                            h.kill()
            await anyio.sleep(POLL_S)
        if outputs is not None and tail is not None:
            _feed(outputs, tail, last=True)
            await outputs.drain(clock.now())
        tg.cancel_scope.cancel()
    view.finish()
    return [outcomes[h.index] for h in launched]


async def _watch_signals(co: Any, grace_s: float, received: Any) -> None:
    """First Ctrl-C (or SIGTERM, from `received`): every worker stops dispatch, in-flight
    requests get `grace_s`; then (or at a second Ctrl-C) they abort. The workers themselves
    ignore Ctrl-C. Before the workers start, STOP means none of them sends anything."""
    async for _ in received:
        notice(f"\ninterrupt: stopping dispatch in every worker; waiting up to {grace_s:g} s "
               "for in-flight requests (Ctrl-C again to abort)")
        co.stop("interrupted")
        with anyio.move_on_after(grace_s):
            async for _ in received:
                break
        co.abort()
        return


def _merge_and_finish(state: RunState, co: Any, outcomes: Sequence[PartOutcome]) -> RunResult:
    path = state.out.path
    parts = [part_dir(path, i) for i in range(len(outcomes))]
    reasons, target_errors = [], []
    for i, o in enumerate(outcomes):
        r = o.result
        if r is not None and r.metrics_state is not None:
            m = load_metrics(r.metrics_state)
        else:
            m = read_part_metrics(parts[i]) or _rebuilt(parts[i], state.sc)
        state.metrics.merge(m)
        if r is not None:
            if r.stop_reason:
                reasons.append(r.stop_reason)
            if r.target_error:
                target_errors.append(r.target_error)
            if r.error:
                notice(f"worker {i} failed: {r.error.strip().splitlines()[-1]}; the attempts it wrote still count")
    merge_requests(path, parts)
    remove_parts(path)
    code, why = co.control()
    reason = why if code else None
    if reason is None and reasons:
        reason = next((r for r in ("interrupted", WORKER_DIED) if r in reasons), reasons[0])
    if target_errors:
        reason = "target-failed"
    elif reason is None and any(o.result is None for o in outcomes):
        reason = WORKER_DIED  # its segment was not sent to the end: the run is not complete
    result = finish(state, stop_reason=reason)
    if target_errors:
        result.target_error = TargetError(target_errors[0])
    return result


def _rebuilt(part: Path, sc: Scenario) -> Any:
    """A part's Metrics from its requests.jsonl (a worker killed before it wrote them)."""
    if not (part / "requests.jsonl").exists():
        return new_metrics(sc)
    _, metrics = rebuild_summary(load_attempts(part), sc)
    return metrics

