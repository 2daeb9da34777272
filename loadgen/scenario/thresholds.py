"""Threshold expressions: "p99(ttft) < 2s", "throttle_rate < 1%", "cost_per_1000 <= $3".

Grammar: METRIC OP VALUE
  METRIC  pNN(L) | max(L) | mean(L)    L = ttft | e2e | service | schedule_lag
                                       | ttft_ok | e2e_ok | service_ok; NN = 50, 90, 99, 99.9 ...
          | throttle_rate | error_rate | warm_ratio | cost_per_1000 | cost_total | rpm | tpm
  OP      <  <=  >  >=
  VALUE   latency: a duration ("2s", "800ms"); rate/ratio: a percent ("1%") or a fraction (0.01);
          cost: "$3.00" or a number (USD); rpm/tpm: a number (per minute)

Pure: `parse` checks an expression (ValueError with a clear message), `evaluate` compares
it with one arm of summary.json (DESIGN.md "What a result holds"). Values are held in
the summary's own units: milliseconds for latencies, fractions for rates and ratios, USD
for costs, per minute for rpm/tpm.

Latency gates count every attempt, as vegeta's and k6's do: ttft, e2e and service are
measured over all attempts (summary.json `latency_ms.<L>_all`), a failed one at the time
it failed (a timeout at its deadline), so `p99(e2e) < 2s` fails when more than 1 % of
attempts time out at a 60 s deadline. A fast failure (a 40 ms throttle) counts at its
40 ms, so gate failures themselves with throttle_rate / error_rate. ttft_ok, e2e_ok and
service_ok are the ok-only figures (`latency_ms.ttft` ...), for a gate on answers alone.

rpm and tpm are the figures a Bedrock quota meets, so they are peaks, not averages:
rpm is the arm's `rpm_peak` (attempts sent in the busiest 60 s of scenario time); tpm
is the peak quota tokens in any 60 s: input + cache write + output x the model's
burndown (5 for Claude 4.x), cache reads not counted. summary.json's `tpm_peak` has no
burndown, so tpm comes from the attempts (`series.peak_quota_tpm`, the same figure as
the report's "peak TPM x burndown" column), passed in as `peak_tpm`.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from loadgen.scenario.units import format_ms, parse_duration, parse_percent, parse_usd

LATENCIES = ("ttft", "e2e", "service", "schedule_lag", "ttft_ok", "e2e_ok", "service_ok")
# summary.json latency_ms keys over every attempt (metrics.ALL_ATTEMPTS; this module sits
# below metrics: scenario.py imports it to check expressions)
ALL_ATTEMPTS = {"ttft": "ttft_all", "e2e": "e2e_all", "service": "service_all"}
# threshold latency -> summary.json latency_ms key: the plain names count every attempt
LATENCY_KEYS = {**ALL_ATTEMPTS, "schedule_lag": "schedule_lag", **{f"{m}_ok": m for m in ALL_ATTEMPTS}}
RATIOS = ("throttle_rate", "error_rate", "warm_ratio")
COSTS = ("cost_per_1000", "cost_total")
THROUGHPUTS = ("rpm", "tpm")
SCALARS = RATIOS + COSTS + THROUGHPUTS

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}

_EXPR = re.compile(r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*(?:\s*\(\s*[^)]*\))?)\s*(?P<op><=|>=|<|>|==|=|!=)\s*(?P<value>.+?)\s*")
_STAT = re.compile(r"(?P<stat>p(?P<pct>\d+(?:\.\d+)?)|max|mean)\s*\(\s*(?P<arg>[A-Za-z0-9_]*)\s*\)")

GRAMMAR_HINT = ('expected METRIC OP VALUE, e.g. "p99(ttft) < 2s", "throttle_rate < 1%" or '
                '"cost_per_1000 <= $3.00"')


@dataclass(frozen=True)
class ThresholdExpr:
    """A parsed threshold. `value` is in the summary's units (ms, fraction, USD, per minute)."""

    text: str                 # the expression as written
    metric: str               # "ttft" ... for latencies, else the scalar name
    stat: str | None          # "p99", "p99.9", "max", "mean" for latencies; None for scalars
    op: str                   # "<" | "<=" | ">" | ">="
    value: float

    @property
    def summary_key(self) -> str:
        """Where the figure lives in summary.json, e.g. "latency_ms.ttft.p999"."""
        if self.stat is None:
            return _SCALAR_KEYS[self.metric]
        return f"latency_ms.{LATENCY_KEYS[self.metric]}.{_stat_key(self.stat)}"


def parse(expr: str) -> ThresholdExpr:
    """Parse one threshold expression; ValueError says what was expected."""
    if not isinstance(expr, str):
        raise ValueError(f"{GRAMMAR_HINT}; got {expr!r}, not a string")
    m = _EXPR.fullmatch(expr)
    if not m:
        raise ValueError(f"{GRAMMAR_HINT}; got {expr!r}")
    metric_text, op, value_text = m.group("metric"), m.group("op"), m.group("value")
    if op not in OPS:
        raise ValueError(f"unknown comparison {op!r} in {expr!r}: expected one of < <= > >=")
    stat: str | None = None
    if "(" in metric_text:
        sm = _STAT.fullmatch(metric_text.replace(" ", ""))
        if not sm:
            raise ValueError(f"unknown metric {metric_text!r} in {expr!r}: expected pNN(...), max(...) "
                             f"or mean(...) of {' | '.join(LATENCIES)}")
        stat, metric = sm.group("stat"), sm.group("arg")
        if metric not in LATENCIES:
            raise ValueError(f"unknown latency {metric!r} in {expr!r}: expected one of {', '.join(LATENCIES)}")
        if sm.group("pct") is not None and not 0 < float(sm.group("pct")) < 100:
            raise ValueError(f"percentile {stat} in {expr!r} must be between p0 and p100 (exclusive)")
    else:
        metric = metric_text
        if metric in LATENCIES:
            raise ValueError(f"{metric!r} in {expr!r} needs a statistic: e.g. p99({metric}), max({metric}) "
                             f"or mean({metric})")
        if metric not in SCALARS:
            near = difflib.get_close_matches(metric, SCALARS, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"unknown metric {metric!r} in {expr!r}{hint} (expected pNN(latency), "
                             f"max(latency), mean(latency) or one of {', '.join(SCALARS)})")
    return ThresholdExpr(text=expr.strip(), metric=metric, stat=stat, op=op,
                         value=_value(metric, value_text, expr))


def _value(metric: str, text: str, expr: str) -> float:
    try:
        if metric in LATENCIES:
            return parse_duration(text) * 1000.0
        if metric in RATIOS:
            if text.strip().endswith("%"):
                x = parse_percent(text)
                if not 0 <= x <= 1:  # a ratio of attempts: "150%" can never be measured
                    raise ValueError(f"a {metric} lies between 0% and 100%")
                return x
            x = float(text)
            if not 0 <= x <= 1:
                raise ValueError(f'a fraction must be between 0 and 1; write a percent like "{x:g}%" instead')
            return x
        if metric in COSTS:
            return parse_usd(text)
        x = float(text)
        if x < 0:
            raise ValueError("must not be negative")
        return x
    except ValueError as e:
        what = {**{m: "a duration" for m in LATENCIES}, **{m: 'a percent like "1%"' for m in RATIOS},
                **{m: 'USD like "$3.00"' for m in COSTS}, **{m: "a number per minute" for m in THROUGHPUTS}}
        raise ValueError(f"bad value {text!r} in {expr!r}: {metric} takes {what[metric]} ({e})") from None


_SCALAR_KEYS = {
    "throttle_rate": "requests.throttled / requests.sent",
    "error_rate": "(requests.error + requests.timeout) / requests.sent",
    "warm_ratio": "cache.warm_ratio",
    "cost_per_1000": "cost_usd.per_1000",
    "cost_total": "cost_usd.total",
    "rpm": "rpm_peak",
    "tpm": "peak quota tokens per 60 s (input + cache write + output x burndown, from requests.jsonl)",
}


def _stat_key(stat: str) -> str:
    # summary.json writes p99.9 as "p999" (no dot in a JSON key that tools address with dots)
    return stat.replace(".", "")


def measure(expr: ThresholdExpr, arm: Mapping[str, Any], *, peak_tpm: float | None = None) -> float:
    """The figure `expr` talks about, from one summary.json arm dict; ValueError if it is absent.

    rpm: the arm's `rpm_peak`. tpm: `peak_tpm`, the arm's peak quota tokens per 60 s with
    burndown (`series.peak_quota_tpm`); summary.json alone cannot give it, so without
    `peak_tpm` a tpm threshold has nothing to measure (ValueError).
    """
    try:
        if expr.stat is not None:
            return float(_latency(arm, expr)[_stat_key(expr.stat)])
        req = arm.get("requests", {})
        if expr.metric == "throttle_rate":
            return req["throttled"] / req["sent"] if req["sent"] else 0.0
        if expr.metric == "error_rate":
            return (req["error"] + req.get("timeout", 0)) / req["sent"] if req["sent"] else 0.0
        if expr.metric == "warm_ratio":
            return float(arm["cache"]["warm_ratio"])
        if expr.metric == "cost_per_1000":
            return float(arm["cost_usd"]["per_1000"])
        if expr.metric == "cost_total":
            return float(arm["cost_usd"]["total"])
        if expr.metric == "rpm":
            return float(arm["rpm_peak"])
        if peak_tpm is None:
            raise KeyError("requests.jsonl")
        return float(peak_tpm)
    except (KeyError, TypeError) as e:
        raise ValueError(f"threshold {expr.text!r}: the summary has no {expr.summary_key} "
                         f"(missing {e})") from None


def latency_over_all(arm: Mapping[str, Any], metric: str) -> "Mapping[str, Any] | None":
    """summary.json's figures of `metric` (ttft, e2e, service) over every attempt, failed
    ones included, from one arm's dict: `latency_ms.<metric>_all`. A summary written
    before those keys existed gives the ok-only figures when no attempt failed (they are
    then the same); None when attempts failed and only ok-only figures are there."""
    lat = arm.get("latency_ms") or {}
    if metric not in ALL_ATTEMPTS:
        return lat.get(metric)
    block = lat.get(ALL_ATTEMPTS[metric])
    if block is not None:
        return block
    req = arm.get("requests") or {}
    if req.get("sent") is not None and req.get("sent") == req.get("ok"):
        return lat.get(metric)
    return None


def _latency_key(arm: Mapping[str, Any], expr: ThresholdExpr) -> str:
    """The latency_ms key (and histogram name) `expr` reads; KeyError when the summary lacks it,
    ValueError when only ok-only figures are there and attempts failed."""
    key = LATENCY_KEYS[expr.metric]
    lat = arm["latency_ms"]
    if key in lat or key == expr.metric:
        return key
    if latency_over_all(arm, expr.metric) is not None:  # an older summary, no failures: ok-only = all
        return expr.metric
    req = arm.get("requests") or {}
    raise ValueError(f"threshold {expr.text!r}: the summary has no latency_ms.{key} (written by a loadgen "
                     f"that left failed attempts out of latency) and {req.get('sent', 0) - req.get('ok', 0)} "
                     f"attempt(s) failed; {expr.stat}({expr.metric}_ok) reads the ok-only figure")


def _latency(arm: Mapping[str, Any], expr: ThresholdExpr) -> Mapping[str, Any]:
    """The latency_ms block `expr` reads; KeyError / ValueError as `_latency_key`."""
    return arm["latency_ms"][_latency_key(arm, expr)]


INTERRUPTED = "Interrupted"  # the error code of an attempt cut short by Ctrl-C (engine/runner.py)


def _failures_note(expr: ThresholdExpr, lat: Mapping[str, Any], interrupted: int = 0) -> str:
    """The failed attempts beside a latency verdict, so they are never out of sight; those
    the user's own interrupt cut short are named, so a FAIL they cause is not read as the
    target's."""
    failed = lat.get("failed")
    if not failed:
        return ""
    if expr.metric.endswith("_ok"):
        return f"ok attempts only: {failed} failed attempt(s) left out"
    note = f"{failed} of {lat.get('count')} attempts failed, each counted at the time it failed"
    if interrupted:
        note += f" ({interrupted} of the arm's attempts were cut short by the interrupt, not by the target)"
    return note


def evaluate(expr: ThresholdExpr, arm_summary: Mapping[str, Any], *,
             peak_tpm: float | None = None) -> tuple[bool, float]:
    """(passed, measured) for one arm; measured is in the same units as expr.value.
    `peak_tpm`: see `measure`."""
    measured = measure(expr, arm_summary, peak_tpm=peak_tpm)
    return OPS[expr.op](measured, expr.value), measured


# ---- checking a whole run ---------------------------------------------------------

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"

PercentileFn = Callable[[str, str, float], "float | None"]
"""(arm, latency metric, percentile 0-100) -> milliseconds or None: for percentiles
summary.json does not carry (e.g. p95), read from the run's histograms."""


@dataclass(frozen=True)
class Result:
    """One threshold checked against one arm."""

    arm: str
    expr: ThresholdExpr
    status: str               # PASS | FAIL | SKIP
    measured: float | None    # in expr.value's units; None when there was nothing to measure
    line: int = 0             # line in scenario.toml (0: unknown)
    note: str = ""            # why there is no measurement, when there is none; else the failed
    #                           attempts beside a latency figure ("" when none failed)

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict:
        return {"arm": self.arm, "expr": self.expr.text, "status": self.status,
                "measured": self.measured, "limit": self.expr.value, "op": self.expr.op,
                "unit": unit_of(self.expr), "measured_text": format_value(self.expr, self.measured),
                "line": self.line, "note": self.note}


def unit_of(expr: ThresholdExpr) -> str:
    """The unit of expr.value and Result.measured: ms, fraction, USD or per_minute."""
    if expr.stat is not None:
        return "ms"
    return {**dict.fromkeys(RATIOS, "fraction"), **dict.fromkeys(COSTS, "USD")}.get(expr.metric, "per_minute")


def format_value(expr: ThresholdExpr, v: float | None) -> str:
    """A measured value as a person reads it: "1.62 s", "850 ms", "0.45 %", "$3.04", "1,200 /min"."""
    if v is None:
        return "no data"
    if expr.stat is not None:
        return format_ms(v)
    if expr.metric in RATIOS:
        return f"{100 * v:.2f} %"
    if expr.metric in COSTS:
        return f"${v:.4f}" if v < 1 else f"${v:.2f}"
    return f"{v:,.0f} /min"


def check(thresholds: Iterable[Any], summary: Mapping[str, Any], *,
          percentile: PercentileFn | None = None,
          peak_tpm: Mapping[str, float] | None = None) -> list[Result]:
    """Every threshold against every arm it names, in order.

    `thresholds`: objects with `expr` (text), `arm` (name or None for every arm) and
    `line` (scenario.Threshold). An arm-specific threshold for an arm the run did not
    include (`run --arm`) is SKIP. A figure with no data (no ok request, so no latency)
    is FAIL: a gate that cannot see must not pass. Results come grouped by arm (summary
    order), in file order within an arm.

    `peak_tpm`: arm -> peak quota tokens per 60 s with burndown (`series.peak_quota_tpm`
    over the run's attempts; an arm absent from it sent nothing, so 0). None: the
    attempts are not at hand, and a tpm threshold FAILs saying so.
    """
    arms = summary.get("arms", {})
    out: list[Result] = []
    for t in thresholds:
        line = getattr(t, "line", 0)
        try:
            expr = parse(t.expr)
        except ValueError as e:  # `validate` rejects these; a hand-edited results copy may not
            bad = ThresholdExpr(text=str(t.expr), metric="?", stat=None, op="?", value=math.nan)
            out.append(Result(t.arm or "*", bad, FAIL, None, line, str(e)))
            continue
        names = [t.arm] if t.arm is not None else list(arms)
        for name in names:
            arm = arms.get(name)
            if arm is None:
                out.append(Result(name, expr, SKIP, None, line, "arm not in this run"))
                continue
            tpm = None if peak_tpm is None else float(peak_tpm.get(name, 0.0))
            out.append(_check_one(name, expr, arm, line, tpm, percentile))
    order = {name: i for i, name in enumerate(arms)}
    return sorted(out, key=lambda r: order.get(r.arm, len(order)))  # stable: grouped by arm, file order within


def _check_one(name: str, expr: ThresholdExpr, arm: Mapping[str, Any], line: int,
               peak_tpm: float | None, percentile: PercentileFn | None) -> Result:
    note = ""
    if expr.stat is not None:
        try:
            hist = _latency_key(arm, expr)
            lat = arm["latency_ms"][hist]
        except (KeyError, TypeError, AttributeError, ValueError):
            lat = None  # evaluate() below says what is missing
        if isinstance(lat, Mapping):
            key = _stat_key(expr.stat)
            note = _failures_note(expr, lat, int((arm.get("errors") or {}).get(INTERRUPTED, 0)))
            if lat.get("count") == 0:
                what = "ok requests" if expr.metric.endswith("_ok") else "attempts"
                return Result(name, expr, FAIL, None, line, f"no {what} to measure")
            if key not in lat and expr.stat.startswith("p") and percentile is not None:
                v = percentile(name, hist, float(expr.stat[1:]))
                if v is None:
                    return Result(name, expr, FAIL, None, line, f"no histogram for {hist}")
                return Result(name, expr, PASS if OPS[expr.op](v, expr.value) else FAIL, v, line, note)
    try:
        passed, v = evaluate(expr, arm, peak_tpm=peak_tpm)
    except ValueError as e:
        return Result(name, expr, FAIL, None, line, str(e))
    return Result(name, expr, PASS if passed else FAIL, v, line, note)


def format_results(results: Iterable[Result]) -> str:
    """One aligned line per result: "ttl-5m  p99(ttft) < 2s  PASS  measured 1.62 s"."""
    rows = list(results)
    if not rows:
        return ""
    wa = max(len(r.arm) for r in rows)
    we = max(len(r.expr.text) for r in rows)
    lines = []
    for r in rows:
        tail = f"measured {format_value(r.expr, r.measured)}" if r.measured is not None else r.note
        if r.measured is not None and r.status == FAIL:
            tail += f" (limit {r.expr.op} {format_value(r.expr, r.expr.value)})"
        if r.measured is not None and r.note:
            tail += f"; {r.note}"
        lines.append(f"{r.arm.ljust(wa)}  {r.expr.text.ljust(we)}  {r.status}  {tail}")
    return "\n".join(lines)
