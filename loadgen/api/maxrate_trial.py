"""One find-max-rate trial: an arm's one-arm scenario simulated at one arrival rate and
judged against its thresholds (loadgen.api.maxrate runs the search over trials).

`run_trial` keeps metrics in memory and writes no files; `trial_job` is the same as a
job for api/fanout.py (a worker rebuilds the pricer and emulator config: the parent's
pricer is a closure and does not pickle). `Found` is one arm's search, as found.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from loadgen.api.session import ProbeState, run_facts
from loadgen.api.setup import emulator_config, make_pricer
from loadgen.api.virtual import run_virtual
from loadgen.engine.clock import VirtualClock
from loadgen.report.verdicts import percentile_from_histograms
from loadgen.report.view import burndown_of
from loadgen.results.histograms import LATENCY_METRICS
from loadgen.results.series import peak_quota_tpm
from loadgen.scenario import Scenario, thresholds
from loadgen.scenario.arrivals import Poisson


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


def run_trial(sc: Scenario, rate: float, pricer: Any, cfg: Any, checks: Sequence[Any]) -> Trial:
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


def trial_job(sc: Scenario, rate: float, checks: Sequence[Any]) -> Trial:
    """One trial as a job (api/fanout.py): the pricer and emulator config rebuilt from `sc`."""
    return run_trial(sc, rate, make_pricer(sc), emulator_config(sc), checks)
