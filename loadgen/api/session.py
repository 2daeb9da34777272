"""One run from its first request to its files: the state `run`, `simulate`, sweeps and
find-max-rate share.

`RunState` holds the runner, metrics and clock of a run; `drive` runs the scenario
through a transport (with the live status line and Ctrl-C handling); `finish` writes
histograms, summary.json, summary.txt, plots and report.html and returns the
`RunResult`. Nothing here prints except the live status line, to the stream it is given.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable, Mapping, TextIO

import anyio

from loadgen import __version__
from loadgen.api.outputs import OutputFlags, RunOutputs
from loadgen.api.progress import Progress
from loadgen.api.result import RunResult
from loadgen.api.setup import InputError
from loadgen.api.signals import watch_signals
from loadgen.engine.record import Attempt
from loadgen.engine.runner import Limits, Runner
from loadgen.report.artifacts import run_artifacts
from loadgen.report.summary_table import summary_table
from loadgen.results.directory import DirectoryTaken, ResultsDir, claim_dir, load_summary
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import Scenario


def open_results(parent: str, sc: Scenario, exact: str | Path | None = None) -> ResultsDir:
    """A new results directory under `parent`, or exactly `exact` (`--results-dir`), holding
    the scenario (InputError if it cannot be made or `exact` is not empty)."""
    try:
        out = ResultsDir.create(parent, sc.name, dt.datetime.now(dt.timezone.utc), exact=exact)
    except DirectoryTaken as e:
        raise InputError(f"--results-dir: {e}") from e
    except OSError as e:
        flag = f"--results-dir {exact}" if exact is not None else f"--out {parent}"
        raise InputError(f"{flag}: cannot create a results directory there: {e.strerror or e}") from e
    out.write_scenario(sc.source)
    return out


def claim_results_dir(path: str | Path) -> Path:
    """Exactly `path`, made (or found empty) for a sweep's or find-max-rate's points
    (`--results-dir`); InputError if it holds anything or cannot be made."""
    try:
        return claim_dir(path)
    except DirectoryTaken as e:
        raise InputError(f"--results-dir: {e}") from e
    except OSError as e:
        raise InputError(f"--results-dir {path}: cannot create a results directory there: {e.strerror or e}") from e


def new_metrics(sc: Scenario) -> Metrics:
    return Metrics([ArmInfo.from_arm(a) for a in sc.arms])


class RunState:
    """What one run produced so far: the runner, its metrics, its clock and timings."""

    def __init__(self, sc: Scenario, clock: Any, out: ResultsDir, outputs: OutputFlags | None = None,
                 extra_facts: Mapping[str, Any] | None = None, interval_outputs: bool = True) -> None:
        """`extra_facts`: run facts beyond run_facts()'s, for run.json and summary.json
        (a run split over processes says how many: `workers`). `interval_outputs=False`:
        no interval aggregator fed by `sink` (a split run's parent records nothing itself:
        it sets `outputs` from its workers' parts, api/workers.py, or writes the merged
        whole-run histograms at `finish`)."""
        self.sc, self.clock, self.out = sc, clock, out
        self.extra_facts = dict(extra_facts or {})
        self.metrics = new_metrics(sc)
        self.runner: Runner | None = None
        self.wall0 = time.monotonic()
        self.wall_start = time.time()
        self.summary: dict[str, Any] | None = None  # summary.json's dict, once finish() wrote it
        self.verdicts: list[Any] = []  # thresholds.Result per threshold and arm, once finish() checked them
        if out is not None:  # before any request: a killed run keeps its clock and flags (rebuild reads them)
            facts = {**run_facts(sc, clock, self.wall0, None), **self.extra_facts}
            out.write_run_facts({k: v for k, v in facts.items() if k not in ("wall_s", "scenario_s", "stopped")})
        # interval logs always, the jsonl stream and CloudWatch when asked (api/outputs.py); never
        # CloudWatch in virtual time: its datums would be stamped with hours that have not happened
        # The interval aggregator records each attempt once, into its interval, and builds
        # self.metrics from the intervals as they close (complete once outputs are drained
        # or closed); the live status line reads `live` meanwhile.
        self.outputs = (RunOutputs(sc, out.path, self.wall_start, outputs, cloudwatch=clock.kind != "virtual",
                                   flush=out.flush, whole=self.metrics)
                        if out is not None and interval_outputs else None)

    @property
    def live(self) -> Any:
        """What the live status line reads (`snapshot`, `recent`): the whole run so far."""
        return self.outputs.live if self.outputs is not None else self.metrics

    def sink(self, a: Attempt, costs: Mapping[str, float]) -> None:
        self.out.append(a)
        if self.outputs is not None:
            self.outputs.record(a, costs)
        else:
            self.metrics.record(a, buckets=costs)


class ProbeState(RunState):
    """A RunState that keeps metrics (and an optional per-attempt hook) but writes no files."""

    def __init__(self, sc: Scenario, clock: Any, on_attempt: Callable[[Any], None] | None = None) -> None:
        super().__init__(sc, clock, out=None)  # type: ignore[arg-type]
        self.on_attempt = on_attempt

    def sink(self, a: Any, costs: Any) -> None:
        self.metrics.record(a, buckets=costs)
        if self.on_attempt is not None:
            self.on_attempt(a)


async def drive(state: RunState, transport: Any, pricer: Any, *, limits: Limits | None = None,
                status: TextIO | None = None, salt: str = "", signals: bool = True,
                prefix_sizes: Any = None, batch: Any = None) -> None:
    """Run the scenario through `transport` on `state.clock`.

    `status`: where the live status line goes (None: nowhere). `signals`: Ctrl-C stops
    dispatch and lets in-flight requests finish (main thread only). `batch`: the clients
    the scenario's batch arms use (engine.batch_arm.BatchSetup; None without batch arms).
    """
    sc, clock = state.sc, state.clock
    runner = Runner(sc, transport, clock, sink=state.sink, pricer=pricer, limits=limits or Limits(),
                    salt=salt, prefix_sizes=prefix_sizes, batch=batch)
    state.runner = runner
    progress = Progress(runner, state.live, clock, duration=sc.duration, quiet=status is None, stream=status)
    async with anyio.create_task_group() as tg:
        if signals:
            tg.start_soon(watch_signals, runner, tg.cancel_scope)
        tg.start_soon(progress.run)
        if state.outputs is not None and clock.kind != "virtual":  # virtual time closes intervals as it goes
            tg.start_soon(state.outputs.run, clock)
        await runner.run()
        if state.outputs is not None:
            await state.outputs.drain(clock.now())
        tg.cancel_scope.cancel()
    progress.finish()
    if runner.target_error is not None:  # recorded and dispatch stopped; the caller exits 3
        raise runner.target_error


def finish(state: RunState, *, stop_reason: str | None = None) -> RunResult:
    """Write histograms, summary.json, summary.txt, plots and report.html; the run's result.

    The threshold verdicts (thresholds.Result, one per threshold and arm) are also left
    in `state.verdicts` and the in-memory summary in `state.summary`.
    """
    runner = state.runner
    reason = stop_reason or (runner.stop_reason if runner else None)
    # closing the outputs first merges the last intervals into state.metrics
    figures = state.outputs.close(state.clock.now()) if state.outputs is not None else None
    summary = state.metrics.summary({**run_facts(state.sc, state.clock, state.wall0, reason), **state.extra_facts})
    behind = behind_schedule(summary, state.clock.scale)
    summary["behind_schedule"] = bool(behind)
    state.summary = summary
    if state.outputs is not None:  # the interval logs were written as the run went
        if figures is not None:
            summary["outputs"] = figures
    else:
        state.out.write_histograms(state.metrics, scenario_s=state.clock.now(), wall_start=state.wall_start)
    state.out.write_summary(summary)
    state.out.write_text("summary.txt", summary_table(summary) + "\n")
    verdicts, html, warnings = run_artifacts(state.out.path, summary, state.sc)
    state.verdicts = verdicts
    return RunResult(state.out.path, load_summary(state.out.path), verdicts, html, warnings, behind)


LAG_WARN_MS = 10.0  # real milliseconds of p99 schedule lag before a run is called "behind schedule"


def behind_schedule(summary: Mapping[str, Any], scale: float) -> list[str]:
    """One warning per arm whose p99 schedule lag says requests started late.

    Lag is in scenario time, so on a warp clock the bound scales with it. Causes: the
    generator is saturated (one core does ~1,000 calls/s), or `max_in_flight` was
    reached. Latency is measured from the intended start either way, so the wait is in
    the figures, not hidden; this says where it came from.
    """
    bound = LAG_WARN_MS * scale
    out = []
    for name, arm in summary.get("arms", {}).items():
        p99 = (arm.get("latency_ms", {}).get("schedule_lag") or {}).get("p99")
        if p99 is not None and p99 > bound:
            out.append(f"{name}: p99 schedule lag {p99:.0f} ms (bound {bound:.0f} ms): requests started late; "
                       "the generator was saturated or max_in_flight was reached. Latencies include the wait.")
    return out


def run_facts(sc: Scenario, clock: Any, wall0: float, stop_reason: str | None) -> dict[str, Any]:
    """The run facts of summary.json: version, target, clock, seed, wall and scenario seconds."""
    return {
        "loadgen_version": __version__, "scenario": sc.name, "target": sc.target.kind,
        "clock": clock.kind, "time_scale": clock.scale, "seed": sc.seed,
        "wall_s": round(time.monotonic() - wall0, 3), "scenario_s": round(clock.now(), 3),
        "duration_s": sc.duration, "region": sc.target.region,
        "stopped": stop_reason or "completed",
    }
