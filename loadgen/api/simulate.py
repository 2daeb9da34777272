"""`loadgen.simulate`: a scenario in virtual time, a what-if sweep, or find-max-rate.

The same runner as `loadgen.run`, on a VirtualClock, with the emulator's model called
in-process (loadgen.api.virtual): hours of traffic take seconds. Results use the same
directory format as `run`; `clock` is "virtual".

  simulate(sc)                         one results directory        -> RunResult
  simulate(sc, sweep={key: values})    one per point under <name>-sweep-<UTC>/,
                                       plus sweep.json, sweep.csv   -> SweepResult
  simulate(sc, find_max_rate=True)     highest arrival rate within the
                                       thresholds, per arm          -> MaxRateResult
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from loadgen import __version__
from loadgen.api import maxrate
from loadgen.api.fanout import Placement, check_cluster, parse_workers
from loadgen.api.outputs import OutputFlags, check_flags
from loadgen.api.result import MaxRateResult, RunResult, SweepResult
from loadgen.api.session import RunState, finish, open_results
from loadgen.api.setup import Overrides, Prepared, apply_overrides, as_scenario, prepare
from loadgen.api.sweep import run_sweep, sweep_flags
from loadgen.api.virtual import run_virtual
from loadgen.engine.clock import VirtualClock
from loadgen.scenario import Scenario


def simulate(scenario: Scenario | str | Path, out: str | Path = "results", *,
             sweep: Mapping[str, Any] | Sequence[str] | None = None, find_max_rate: bool = False,
             duration: str | None = None, arms: Sequence[str] = (), max_requests: int | None = None,
             allow_huge: bool = False, progress: Callable[[str], None] | None = None,
             signals: bool = True, workers: int | str | None = None,
             cluster: str | None = None, outputs: OutputFlags | None = None, results_dir: str | Path | None = None,
             sets: Sequence[str] = ()) -> RunResult | SweepResult | MaxRateResult:
    """Simulate `scenario` (a Scenario or a path) in virtual time and write its results under `out`.

    `sweep`: `{"arms.cache_ttl": ["5m", "1h"], ...}` (or `--sweep` flag strings); the
    points edit the scenario's TOML text (`scenario.source`). `find_max_rate`: search
    each arm's highest arrival rate within the thresholds (open-loop scenarios). The
    other keyword arguments are `loadgen simulate`'s flags. `progress` receives the
    header and per-point / per-trial lines; `signals`: Ctrl-C stops cleanly and keeps
    what was written (main thread only). `workers`: sweep points / find-max-rate trials
    run this many at once in processes (`"auto"`: one per core; None: 1, or on a cluster
    its CPUs); `cluster`: `"ray"` or `"ray://HOST:PORT"` runs them as Ray tasks instead.
    Either way the results are the serial ones; a plain simulation always runs here.
    `outputs`: `--output jsonl` (the interval stream; CloudWatch is refused: virtual
    time has no wall clock to stamp its datums with).
    `results_dir`: write exactly there instead of a new folder under `out` (for a sweep or
    find-max-rate: their parent directory); it must not hold anything. `sets`: `--set
    KEY=VALUE` strings applied to the scenario first.

    Raises ScenarioError / InputError / ValueError on bad input, before anything runs.
    """
    if sweep and find_max_rate:
        raise ValueError("--find-max-rate and --sweep do not combine; run them separately")
    if outputs is not None and outputs.cloudwatch:
        raise ValueError("--output cloudwatch: simulate runs in virtual time, so its metrics have no real time to "
                         "be stamped with; send them from `loadgen run` (the warp clock takes minutes too)")
    n = parse_workers(workers) if isinstance(workers, str) else workers
    if n is not None and n < 1:
        raise ValueError(f"workers: expected a whole number >= 1 or 'auto', got {workers!r}")
    placement = Placement(n if n is not None else (None if cluster else 1),
                          check_cluster(cluster) if cluster is not None else None)
    sc = as_scenario(scenario)
    # simulate always calls the built-in emulator's model, whatever [target] says
    ov = Overrides(target="emulator", duration=duration, arms=tuple(arms), max_requests=max_requests,
                   allow_huge=allow_huge, sets=tuple(sets))
    if sweep:
        return run_sweep(sc, sweep_flags(sweep), ov, out=out, progress=progress, signals=signals,
                         placement=placement, results_dir=results_dir)
    sc = apply_overrides(sc, ov)
    ready = prepare(sc, builtin_emulator=True)
    if find_max_rate:
        maxrate.check_open_loop(sc)
        if progress is not None:
            progress("\n".join(maxrate.header(sc)))
        return maxrate.find_max_rate(sc, ready.pricer, ready.emulator, out=out, progress=progress, signals=signals,
                                     placement=placement, results_dir=results_dir)
    return simulate_prepared(ready, out=out, max_requests=max_requests, progress=progress, signals=signals,
                             outputs=outputs, results_dir=results_dir)


def simulate_prepared(ready: Prepared, *, out: str | Path = "results", max_requests: int | None = None,
                      progress: Callable[[str], None] | None = None, signals: bool = True,
                      outputs: OutputFlags | None = None, results_dir: str | Path | None = None) -> RunResult:
    """One simulation of a scenario already amended and checked (`setup.prepare`), as
    `loadgen simulate` calls it (`results_dir`: exactly there, see `simulate`)."""
    sc = ready.scenario
    check_flags(outputs)
    results = open_results(str(out), sc, exact=results_dir)
    state = RunState(sc, VirtualClock(), results, outputs)
    if progress is not None:
        progress(f"loadgen {__version__}: {sc.name} simulated in virtual time (emulator model in-process, "
                 f"{sc.target.region}), {len(sc.arms)} arm(s): {', '.join(a.name for a in sc.arms)}; "
                 f"results in {results.path}")
    try:
        run_virtual(state, ready.pricer, ready.emulator, max_requests=max_requests, signals=signals)
    finally:
        results.close()
    return finish(state)


def speed_line(result: RunResult) -> str:
    """How fast virtual time went: scenario seconds simulated per wall second."""
    s = result.summary
    wall = s["wall_s"]
    n = sum(a["requests"]["sent"] for a in s["arms"].values())
    return (f"simulated {s['scenario_s']:,.0f} s of scenario time in {wall:.2f} s wall "
            f"({n} attempts, {n / wall if wall > 0 else 0:,.0f} per wall second)")
