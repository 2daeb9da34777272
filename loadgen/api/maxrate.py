"""`loadgen simulate --find-max-rate`: the highest arrival rate each arm sustains.

For an open-loop scenario, each arm (alone, so arms do not share Region capacity)
is simulated at trial arrival rates; a rate passes when every threshold of the
scenario holds (default when it has none: throttle_rate < 1 %). The search doubles
or halves from the scenario's own rate until one rate passes and one fails, then
bisects (geometrically) until they are within `tolerance` of each other.

The binding constraint is read from the lowest failing trial: which thresholds
failed, and what throttled, from the limit each throttled attempt names in its
`quota` field (the emulator's x-loadgen-quota: `rpm` / `tpm` / `tpd` quota of the model id as
called in the caller's Region, or `capacity` of the listed Regions, when the profile
had nowhere to spill). A throttle without it (an injected fault) is shown by its message.

Trials run with the scenario's arrival kind when it has one rate (constant,
poisson); other shapes (stages, bursts, trace) are replaced by a Poisson process at
the trial rate, and the output says so.

Every trial's verdicts (each threshold: measured value, limit, PASS/FAIL) go into
maxrate.json. Failing trials are how the search finds the limit, so they do not set
the exit code: it is 0 when every arm has a rate within the thresholds, 1 when for
some arm even the lowest rate tried fails them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from loadgen import __version__
from loadgen._toml import toml
from loadgen.api import rate_search
from loadgen.api.fanout import SERIAL, Fanout, Placement, open_fanout, read_files, write_files
from loadgen.api.rate_search import Space
from loadgen.api.result import MaxRateResult, RunResult
from loadgen.api.maxrate_trial import Found, Trial, at_rate, run_trial, trial_job
from loadgen.api.maxrate_trial import throttle_cause as throttle_cause  # where tests and callers import it
from loadgen.api.search_fanout import run_searches
from loadgen.api.session import RunState, claim_results_dir, finish
from loadgen.api.setup import InputError, emulator_config, make_pricer
from loadgen.api.signals import StopFlag
from loadgen.api.virtual import run_virtual
from loadgen.catalog import profiles
from loadgen.engine.clock import VirtualClock
from loadgen.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLD
from loadgen.results.directory import ResultsDir, safe_name
from loadgen.scenario import sweep
from loadgen.scenario import Scenario, Threshold
from loadgen.scenario.units import format_ms, format_rate

DEFAULT_THRESHOLDS = (Threshold("throttle_rate < 1%"),)


def scenario_text_at(sc: Scenario, rate: float) -> str:
    """TOML of the one-arm scenario `sc` at `rate` requests/s, as `at_rate` runs it."""
    doc = toml.loads(sc.source)
    arrivals = doc.get("arrivals") or {}
    if not sc.arrivals.is_steady:
        arrivals = {"kind": "poisson"}
    doc["arrivals"] = {**arrivals, "rate": f"{rate!r}/s"}
    if "arms" in doc:
        names = {a.name for a in sc.arms}
        doc["arms"] = [a for a in doc["arms"] if a.get("name") in names]
    return sweep.dumps(doc, header=f"loadgen simulate --find-max-rate: {sc.path} with arm "
                                   f"{', '.join(a.name for a in sc.arms)} at {rate:g} requests/s")


# --------------------------------------------------------------------------- the search

def search(probe: Callable[[float], Trial], start: float, *, tolerance: float = 0.05,
           max_trials: int = 24, lowest: float = 1 / 3600, highest: float = 5000.0) -> tuple[Trial | None, Trial | None, list[Trial]]:
    """(highest passing trial, lowest failing trial, all trials) for a monotone-ish probe.

    Exponential search from `start` (x2 up while passing, /2 down while failing), then
    geometric bisection until fail/pass <= 1 + tolerance or max_trials is spent
    (loadgen/api/rate_search.py, which also runs it in parallel).
    """
    trials, bounds = rate_search.search(probe, Space(start, tolerance, max_trials, lowest, highest), _passed)
    return _at(trials, bounds.good), _at(trials, bounds.bad), trials


def _passed(t: Trial) -> bool:
    return t.passed


def _at(trials: Sequence[Trial], i: int | None) -> Trial | None:
    return None if i is None else trials[i]


def results_job(path: str, sc: Scenario, rate: float, ship: bool) -> tuple[RunResult, dict[str, bytes] | None, str | None]:
    """The results directory at the rate found, as a job: (result, files, folder) when `ship`
    (it ran in a temporary folder, maybe on another machine), else (result, None, None)."""
    where = Path(tempfile.mkdtemp(prefix="loadgen-maxrate-")) / Path(path).name if ship else Path(path)
    try:
        result = _results_at(where, sc, rate, make_pricer(sc), emulator_config(sc))
        return (result, read_files(where), str(where)) if ship else (result, None, None)
    finally:
        if ship:
            shutil.rmtree(where.parent, ignore_errors=True)


class _Stopped(Exception):
    """Ctrl-C during a find-max-rate trial: the search ends after it."""


def header(sc: Scenario) -> list[str]:
    """What `loadgen simulate --find-max-rate` prints before its first trial."""
    checks = sc.thresholds or DEFAULT_THRESHOLDS
    lines = [f"loadgen {__version__}: find-max-rate for {sc.name}, {len(sc.arms)} arm(s), "
             f"{sc.duration:g} s of scenario time per trial, virtual time",
             "thresholds: " + "; ".join(t.expr + (f" [{t.arm}]" if t.arm else "") for t in checks)
             + ("" if sc.thresholds else " (default: the scenario has none)")]
    if sc.arrivals is not None and not sc.arrivals.is_steady:
        lines.append(f"note: trials replace the {sc.arrivals.kind} arrival shape with a Poisson process "
                     "at the trial rate")
    return lines


def check_open_loop(sc: Scenario) -> None:
    """InputError unless `sc` has an arrival rate to raise (open loop, [arrivals])."""
    if sc.arrivals is None:
        raise InputError(f"loadgen simulate --find-max-rate: {sc.path} drives closed-loop [sessions]; the search "
                         "needs an open-loop scenario with [arrivals] (an arrival rate to raise)")


def find_max_rate(sc: Scenario, pricer: Any, cfg: Any, *, out: str | Path = "results",
                  progress: Callable[[str], None] | None = None, signals: bool = True,
                  placement: Placement = SERIAL, results_dir: str | Path | None = None) -> MaxRateResult:
    """Search each arm's highest rate within the thresholds; write `<out>/<name>-maxrate-<UTC>/`
    (or exactly `results_dir`, empty or new): maxrate.json, and a results directory per arm
    at the rate found.

    `progress` receives one line per trial and per arm searched. `exit_code`: 0 when every
    arm has a rate within the thresholds, 1 when for some arm even the lowest rate tried
    fails them, 130 when interrupted. `placement` (`--workers`, `--cluster`): the arms are
    searched side by side and spare workers run trials ahead (api/search_fanout.py); the
    trials and the answer are the serial search's, and the jobs rebuild the pricer and
    emulator config from the scenario (`pricer` and `cfg` then serve the table only).
    """
    check_open_loop(sc)
    assert sc.arrivals is not None
    checks = sc.thresholds or DEFAULT_THRESHOLDS
    start = sc.arrivals.rate if sc.arrivals.is_steady and sc.arrivals.rate > 0 else 1.0
    fan = open_fanout(placement) if placement.parallel else None  # RayMissing / ClusterError: before any file
    try:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        if results_dir is not None:
            parent = claim_results_dir(results_dir)
        else:
            parent = Path(out) / f"{safe_name(sc.name)}-maxrate-{stamp}"
            parent.mkdir(parents=True, exist_ok=False)
        if fan is None:
            found, points, interrupted = _serial(sc, checks, start, parent, pricer, cfg, progress, signals)
        else:
            if progress is not None:
                progress(f"  trials on {fan.where}: the arms side by side, the next possible rates ahead")
            found, points, interrupted = _parallel(fan, sc, checks, start, parent, progress, signals)
    finally:
        if fan is not None:
            fan.close()
    return _write(parent, sc, cfg, checks, found, points, interrupted)


def _serial(sc: Scenario, checks: Sequence[Any], start: float, parent: Path, pricer: Any, cfg: Any,
            progress: Callable[[str], None] | None, signals: bool) -> tuple[list[Found], list[RunResult], bool]:
    found: list[Found] = []
    points: list[RunResult] = []
    interrupted = False
    with StopFlag("the trial", enabled=signals) as stop:
        for arm in sc.arms:
            one = dataclasses.replace(sc, arms=(arm,))
            mine = tuple(t for t in checks if t.arm in (None, arm.name))
            t0 = time.monotonic()
            tried: list[Trial] = []

            def probe(rate: float, one: Scenario = one, mine: tuple = mine, tried: list = tried) -> Trial:
                t = run_trial(one, rate, pricer, cfg, mine)
                tried.append(t)
                if progress is not None:
                    progress(_trial_line(arm.name, t))
                if stop.set:
                    raise _Stopped
                return t

            try:
                good, bad, trials = search(probe, start)
            except (_Stopped, KeyboardInterrupt):  # Ctrl-C: keep the trials done, stop searching
                interrupted = True
                good = max((t for t in tried if t.passed), key=lambda t: t.rate, default=None)
                bad = min((t for t in tried if not t.passed), key=lambda t: t.rate, default=None)
                trials = tried
            f = Found(arm.name, good.rate if good else None, bad.rate if bad else None, good, bad, tuple(trials),
                      interrupted)
            found.append(f)
            if interrupted:
                break
            if good is not None:  # a full results directory at the rate found, for report/compare
                points.append(_results_at(parent / safe_name(arm.name), one, good.rate, pricer, cfg))
            if progress is not None:
                progress(f"  {arm.name}: {len(trials)} trials in {time.monotonic() - t0:.1f} s wall")
            if stop.set:
                interrupted = True
                break
    return found, points, interrupted


def _parallel(fan: Fanout, sc: Scenario, checks: Sequence[Any], start: float, parent: Path,
              progress: Callable[[str], None] | None, signals: bool) -> tuple[list[Found], list[RunResult], bool]:
    ones = {arm.name: dataclasses.replace(sc, arms=(arm,)) for arm in sc.arms}
    mine = {arm.name: tuple(t for t in checks if t.arm in (None, arm.name)) for arm in sc.arms}

    def on_trial(arm: Any, t: Trial) -> None:
        if progress is not None:
            progress(_trial_line(arm, t))

    def on_finished(arm: Any, trials: list[Trial], bounds: Any, wall_s: float) -> tuple | None:
        if progress is not None:
            progress(f"  {arm}: {len(trials)} trials in {wall_s:.1f} s wall")
        good = _at(trials, bounds.good)
        if good is None:
            return None
        return results_job, (str(parent / safe_name(arm)), ones[arm], good.rate, fan.ships_files)

    def on_follow_up(arm: Any, done: tuple) -> RunResult:
        result, files, ran_in = done
        if files is not None:  # ran elsewhere: its directory comes back as bytes
            path = parent / safe_name(arm)
            write_files(path, files, was=ran_in)
            result = dataclasses.replace(result, path=path,
                                         report=path / "report.html" if result.report is not None else None)
        return result

    with StopFlag("the trials in hand", enabled=signals) as stop:
        done = run_searches(fan, {a: Space(start) for a in ones},
                            lambda arm, rate: (trial_job, (ones[arm], rate, mine[arm])), _passed, stop,
                            on_trial=on_trial, on_finished=on_finished, on_follow_up=on_follow_up)
    found, points = [], []
    interrupted = stop.set
    for arm, s in done.items():
        if not s.trials:
            continue
        good, bad = _at(s.trials, s.bounds.good), _at(s.trials, s.bounds.bad)
        found.append(Found(arm, good.rate if good else None, bad.rate if bad else None, good, bad,
                           tuple(s.trials), not s.finished))
        interrupted = interrupted or not s.finished
        if s.follow_up is not None:
            points.append(s.follow_up)
        if progress is not None and s.unused:
            progress(f"  {arm}: {s.unused} trial(s) run ahead were not needed")
    return found, points, interrupted


def _trial_line(arm: str, t: Trial) -> str:
    return (f"  {arm}: {format_rate(t.rate):>9} {'pass' if t.passed else 'FAIL'}  "
            f"({t.sent} attempts, throttled {t.measured['throttle_pct']:.2f}%)")


def _write(parent: Path, sc: Scenario, cfg: Any, checks: Sequence[Any], found: list[Found], points: list[RunResult],
           interrupted: bool) -> MaxRateResult:
    text = table(found, sc, cfg)
    # A failing trial is how the search finds the limit, not a failure of the command: exit 1
    # only when an arm has no rate at all within the thresholds (even the lowest tried failed).
    none = [f.arm for f in found if f.max_rate is None and not f.interrupted]
    code = EXIT_INTERRUPTED if interrupted else EXIT_THRESHOLD if none else EXIT_OK
    doc = {"loadgen_version": __version__, "scenario": sc.name, "clock": "virtual",
           "duration_s": sc.duration, "thresholds": [t.expr for t in checks],
           "default_thresholds": not sc.thresholds, "exit_code": code,
           "complete": not interrupted, "interrupted": interrupted,
           "arms": {f.arm: {"max_rate_per_s": f.max_rate, "first_failing_rate_per_s": f.first_fail,
                            "binding": f.binding, "interrupted": f.interrupted, "at_max": _trial_dict(f.at_max),
                            "at_first_fail": _trial_dict(f.at_fail),
                            "trials": [_trial_dict(t) for t in f.trials]} for f in found}}
    body = json.dumps(doc, indent=2) + "\n"
    (parent / "maxrate.json").write_text(body)
    return MaxRateResult(parent, json.loads(body), {f.arm: f for f in found}, points, text)


def no_rate(result: MaxRateResult) -> list[str]:
    """The arms for which even the lowest rate tried fails the thresholds."""
    return [f.arm for f in result.arms.values() if f.max_rate is None and not f.interrupted]


def _trial_dict(t: Trial | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"rate_per_s": t.rate, "passed": t.passed, "sent": t.sent, "failed": list(t.failed),
            "throttles": dict(t.throttles), **t.measured, "thresholds": list(t.verdicts)}


def _results_at(path: Path, sc: Scenario, rate: float, pricer: Any, cfg: Any) -> RunResult:
    path.mkdir(parents=True)
    out = ResultsDir(path)
    run = at_rate(sc, rate)
    out.write_scenario(scenario_text_at(sc, rate))  # what this directory ran, not the input file
    state = RunState(run, VirtualClock(), out)
    try:
        run_virtual(state, pricer, cfg, signals=False)
    finally:
        out.close()
    return finish(state)  # maxrate.json holds the verdicts; this directory is for report/compare


def table(found: Sequence[Found], sc: Scenario, cfg: Any) -> str:
    """The result per arm: the rate found, what it showed, what bound it."""
    lines = []
    for f in found:
        arm = next(a for a in sc.arms if a.name == f.arm)
        lim = cfg.limit_for(arm.model_id, profiles.kind_of(arm.model_id))
        quota = ", ".join(f"{k.upper()} {v:,}" for k, v in (("tpm", lim.tpm), ("rpm", lim.rpm), ("tpd", lim.tpd))
                          if v) or "no quota"
        if f.interrupted:
            head = (f"{f.arm}: search interrupted after {len(f.trials)} trial(s); highest passing so far "
                    + (format_rate(f.max_rate) if f.max_rate is not None else "none"))
        elif f.max_rate is None:
            head = f"{f.arm}: no rate passes (lowest tried {format_rate(f.first_fail or 0)})"
        else:
            head = (f"{f.arm}: max {format_rate(f.max_rate)} ({f.max_rate * 60:,.0f} requests/min)"
                    + ("" if f.first_fail else " (the highest rate tried)"))
            m = f.at_max.measured if f.at_max else {}
            head += (f"; at it: throttled {m.get('throttle_pct', 0):.2f}%, "
                     f"p99 ttft {_ms(m.get('ttft_p99_ms'))}, p99 e2e {_ms(m.get('e2e_p99_ms'))}")
        lines.append(head)
        lines.append(f"    {arm.model_id} ({arm.profile}; emulator quota {quota}, {sc.target.region})")
        if f.first_fail is not None:
            lines.append(f"    binding at {format_rate(f.first_fail)}: {f.binding}")
    return "\n".join(lines)


def _ms(x: Any) -> str:
    return "-" if x is None else format_ms(x)
