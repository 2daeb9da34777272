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
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from loadgen import __version__
from loadgen._toml import toml
from loadgen.api.result import MaxRateResult, RunResult
from loadgen.api.session import ProbeState, RunState, finish, run_facts
from loadgen.api.setup import InputError
from loadgen.api.signals import StopFlag
from loadgen.api.virtual import run_virtual
from loadgen.catalog import profiles
from loadgen.engine.clock import VirtualClock
from loadgen.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLD
from loadgen.report.verdicts import percentile_from_histograms
from loadgen.report.view import burndown_of
from loadgen.results.directory import ResultsDir, safe_name
from loadgen.results.histograms import LATENCY_METRICS
from loadgen.results.series import peak_quota_tpm
from loadgen.scenario import sweep, thresholds
from loadgen.scenario import Scenario, Threshold
from loadgen.scenario.arrivals import Poisson
from loadgen.scenario.units import format_ms, format_rate

DEFAULT_THRESHOLDS = (Threshold("throttle_rate < 1%"),)


@dataclass(frozen=True)
class Trial:
    """One simulated rate (requests per second) and what it showed."""

    rate: float
    passed: bool
    sent: int
    failed: tuple[str, ...]                  # "expr (measured text)" of failed thresholds
    throttles: tuple[tuple[str, int], ...]   # (cause, attempts), most first
    measured: dict[str, Any] = field(default_factory=dict)
    verdicts: tuple[dict[str, Any], ...] = ()  # every threshold checked (thresholds.Result.to_dict())


@dataclass(frozen=True)
class Found:
    arm: str
    max_rate: float | None                   # None: even the lowest rate tried failed
    first_fail: float | None                 # None: the highest rate tried passed
    at_max: Trial | None
    at_fail: Trial | None
    trials: tuple[Trial, ...]
    interrupted: bool = False                # Ctrl-C cut the search short: the bounds are not final

    @property
    def binding(self) -> str:
        t = self.at_fail
        if t is None:
            return "none found (no trial rate failed)"
        parts = list(t.failed)
        if t.throttles:
            cause, n = t.throttles[0]
            parts.append(f"throttled by {cause} ({n} attempts)")
        return "; ".join(parts) or "unknown"


def throttle_cause(quota: str | None, message: str | None, model_id: str) -> str:
    """Which limit a throttled attempt hit, from its `quota` field (see the module doc);
    without one (AWS sends none, nor do injected faults), its message."""
    kind, _, regions = (quota or "").partition(" ")
    if kind == "capacity":
        return f"Region capacity ({regions.replace(',', ', ')})"
    if kind in ("rpm", "tpm", "tpd"):
        return f"{kind.upper()} quota of {model_id} in {regions or '?'}"
    msg = message or ""
    return f"throttling ({msg[:60] or 'no message'})"


def at_rate(sc: Scenario, rate: float) -> Scenario:
    """The scenario with its arrival rate set to `rate` per second (see the module doc)."""
    assert sc.arrivals is not None
    if sc.arrivals.is_steady:
        return dataclasses.replace(sc, arrivals=dataclasses.replace(sc.arrivals, rate=rate))
    return dataclasses.replace(sc, arrivals=Poisson(rate=rate))


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


def search(probe: Callable[[float], Trial], start: float, *, tolerance: float = 0.05,
           max_trials: int = 24, lowest: float = 1 / 3600, highest: float = 5000.0) -> tuple[Trial | None, Trial | None, list[Trial]]:
    """(highest passing trial, lowest failing trial, all trials) for a monotone-ish probe.

    Exponential search from `start` (x2 up while passing, /2 down while failing), then
    geometric bisection until fail/pass <= 1 + tolerance or max_trials is spent.
    """
    trials: list[Trial] = []
    good: Trial | None = None
    bad: Trial | None = None
    r = min(max(start, lowest), highest)
    while len(trials) < max_trials:
        t = probe(r)
        trials.append(t)
        if t.passed:
            good = t if good is None or t.rate > good.rate else good
            if bad is not None or r >= highest:
                break
            r = min(r * 2, highest)
        else:
            bad = t if bad is None or t.rate < bad.rate else bad
            if good is not None or r <= lowest:
                break
            r = max(r / 2, lowest)
    while good is not None and bad is not None and bad.rate / good.rate > 1 + tolerance and len(trials) < max_trials:
        t = probe((good.rate * bad.rate) ** 0.5)
        trials.append(t)
        if t.passed:
            good = t
        else:
            bad = t
    return good, bad, trials


# --------------------------------------------------------------------------- the search

def _trial(sc: Scenario, rate: float, pricer: Any, cfg: Any, checks: Sequence[Any]) -> Trial:
    causes: Counter[str] = Counter()
    arm = sc.arms[0]
    # a `tpm` threshold is measured like the report does: peak quota tokens from the attempts
    wants_tpm = any(thresholds.parse(t.expr).metric == "tpm" for t in checks)
    quota_events: list[dict[str, Any]] = []

    def seen(a: Any) -> None:
        if a.status == "throttled":
            causes[throttle_cause(a.quota, a.message, arm.model_id)] += 1
        if wants_tpm:
            quota_events.append({"arm": a.arm, "model_id": a.model_id, "start": a.start, "end": a.end,
                                 "input_tokens": a.input_tokens, "cache_write": a.cache_write,
                                 "output_tokens": a.output_tokens})

    state = ProbeState(at_rate(sc, rate), VirtualClock(), on_attempt=seen)
    run_virtual(state, pricer, cfg, signals=False)
    summary = state.metrics.summary(run_facts(state.sc, state.clock, state.wall0, None))
    peak_tpm = None
    if wants_tpm:
        peak_tpm = peak_quota_tpm(quota_events, burndown_of)
    # percentiles summary.json does not carry (p95) come from the trial's live histograms
    hists = {a: {m: state.metrics.histogram(a, m) for m in LATENCY_METRICS} for a in state.metrics.arm_names}
    results = thresholds.check(checks, summary, peak_tpm=peak_tpm,
                               percentile=percentile_from_histograms(Path("."), in_memory=hists))
    s = summary["arms"][arm.name]
    req = s["requests"]
    failed = tuple(f"{r.expr.text} (measured {thresholds.format_value(r.expr, r.measured)})"
                   for r in results if r.failed)
    measured = {
        "throttle_pct": round(100 * req["throttled"] / req["sent"], 3) if req["sent"] else 0.0,
        "ttft_p99_ms": s["latency_ms"]["ttft"].get("p99"), "e2e_p99_ms": s["latency_ms"]["e2e"].get("p99"),
        "sent": req["sent"], "ok": req["ok"],
    }
    return Trial(rate, not failed, req["sent"], failed, tuple(causes.most_common()), measured,
                 tuple(r.to_dict() for r in results))


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
                  progress: Callable[[str], None] | None = None, signals: bool = True) -> MaxRateResult:
    """Search each arm's highest rate within the thresholds; write `<out>/<name>-maxrate-<UTC>/`
    (maxrate.json, and a results directory per arm at the rate found).

    `progress` receives one line per trial and per arm searched. `exit_code`: 0 when every
    arm has a rate within the thresholds, 1 when for some arm even the lowest rate tried
    fails them, 130 when interrupted.
    """
    check_open_loop(sc)
    assert sc.arrivals is not None
    checks = sc.thresholds or DEFAULT_THRESHOLDS
    start = sc.arrivals.rate if sc.arrivals.is_steady and sc.arrivals.rate > 0 else 1.0
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent = Path(out) / f"{safe_name(sc.name)}-maxrate-{stamp}"
    parent.mkdir(parents=True, exist_ok=False)
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
                t = _trial(one, rate, pricer, cfg, mine)
                tried.append(t)
                if progress is not None:
                    progress(f"  {arm.name}: {format_rate(rate):>9} {'pass' if t.passed else 'FAIL'}  "
                             f"({t.sent} attempts, throttled {t.measured['throttle_pct']:.2f}%)")
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
