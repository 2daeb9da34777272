"""Arms side by side, each figure with its delta against the first: `loadgen compare`.

Pure core: `compare(columns)` takes (label, summary.json arm dict) pairs and returns
every figure with its delta against the first column: absolute and percent, or
percentage points for ratios (a warm ratio going from 70 % to 99 % is "+29 pts", not
"+41 %"). `groups_for(runs)` decides what is compared with what:

  one results directory      its arms, against the first arm
  several directories        the same-named arms across runs, labelled run/arm,
                             each against the first run that has it; an arm only
                             one run has stands alone (never against another arm)
  no arm name shared         runs of one scenario (`run --arm a`, `run --arm b`):
                             every run/arm against the first, as one run's arms;
                             runs of different scenarios: nothing corresponds, and
                             `cmd_compare` refuses (exit 2) rather than pit unrelated
                             arms against each other

Directories from different scenarios (summary.json `scenario`) are said plainly
(`scenario_note`) before any figure. A results directory without summary.json (a
killed run) is rebuilt from requests.jsonl by the same path `loadgen report` uses
(`loadgen.report.view.read_summary`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from loadgen.catalog.pricing import format_usd
from loadgen.report.table import format_table
from loadgen.scenario.units import format_ms
from loadgen.scenario.thresholds import latency_over_all


@dataclass(frozen=True)
class Metric:
    key: str          # JSON key
    label: str        # table row
    kind: str         # count | ratio | usd | ms | per_minute
    get: Callable[[Mapping[str, Any]], "float | None"]


def _lat(metric: str, stat: str) -> Callable[[Mapping[str, Any]], "float | None"]:
    """One figure of latency_ms.<metric> as summary.json has it (ttft, e2e, service: ok only)."""
    return lambda arm: arm.get("latency_ms", {}).get(metric, {}).get(stat)


def _lat_all(metric: str, stat: str) -> Callable[[Mapping[str, Any]], "float | None"]:
    """One figure of `metric` over every attempt, failed ones included (as thresholds read it)."""
    return lambda arm: (latency_over_all(arm, metric) or {}).get(stat)


def _req(k: str) -> Callable[[Mapping[str, Any]], "float | None"]:
    return lambda arm: arm.get("requests", {}).get(k)


def _rate(*keys: str) -> Callable[[Mapping[str, Any]], "float | None"]:
    def f(arm: Mapping[str, Any]) -> float | None:
        r = arm.get("requests", {})
        return sum(r.get(k, 0) for k in keys) / r["sent"] if r.get("sent") else 0.0
    return f


def _batch(arm: Mapping[str, Any]) -> Mapping[str, Any]:
    return arm.get("batch") or {}


def _warm_ratio(cache: Mapping[str, Any]) -> float | None:
    """None for an arm with no warm or cold call (caching off): summary.json says 0.0 there,
    and a "+99 pts" against it would be read as an effect (the run table prints "-")."""
    return cache.get("warm_ratio") if cache.get("warm", 0) + cache.get("cold", 0) else None


def _failed(req: Mapping[str, Any]) -> float | None:
    sent, ok = req.get("sent"), req.get("ok")
    return sent - ok if isinstance(sent, int) and isinstance(ok, int) else None


METRICS: tuple[Metric, ...] = (
    Metric("sent", "attempts sent", "count", _req("sent")),
    Metric("ok", "ok", "count", _req("ok")),
    Metric("throttle_rate", "throttled", "ratio", _rate("throttled")),
    Metric("error_rate", "errors + timeouts", "ratio", _rate("error", "timeout")),
    Metric("retries", "retries", "count", _req("retries")),
    Metric("warm_ratio", "warm ratio", "ratio", lambda a: _warm_ratio(a.get("cache", {}))),
    Metric("cache_write_tokens", "cache write tokens", "count", lambda a: a.get("tokens", {}).get("cache_write")),
    Metric("cache_read_tokens", "cache read tokens", "count", lambda a: a.get("tokens", {}).get("cache_read")),
    Metric("cost_per_1000", "cost per 1000 ok", "usd", lambda a: a.get("cost_usd", {}).get("per_1000")),
    # batch arms: the bill both ways (cache pricing stacked with the batch discount or not,
    # an assumption: docs/pricing.md), and when the last result came (every arm beside one)
    Metric("batch_stacked_per_1000", "  batch, cache stacked", "usd",
           lambda a: _batch(a).get("cost_usd", {}).get("stacked_per_1000")),
    Metric("batch_unstacked_per_1000", "  batch, cache unstacked", "usd",
           lambda a: _batch(a).get("cost_usd", {}).get("unstacked_per_1000")),
    Metric("time_to_last_result_s", "time to last result", "s",
           lambda a: _batch(a).get("time_to_last_result_s", a.get("last_result_s"))),
    Metric("cost_total", "cost total", "usd", lambda a: a.get("cost_usd", {}).get("total")),
    Metric("cost_cache_write", "  cache write", "usd", lambda a: a.get("cost_usd", {}).get("cache_write")),
    Metric("cost_cache_read", "  cache read", "usd", lambda a: a.get("cost_usd", {}).get("cache_read")),
    Metric("cost_input", "  input", "usd", lambda a: a.get("cost_usd", {}).get("input")),
    Metric("cost_output", "  output", "usd", lambda a: a.get("cost_usd", {}).get("output")),
    # latency over every attempt (failed ones at the time they failed), with the failures
    # beside it; then the ok-only figures under their original keys
    Metric("failed", "failed attempts", "count", lambda a: _failed(a.get("requests", {}))),
    Metric("ttft_all_p50", "ttft p50", "ms", _lat_all("ttft", "p50")),
    Metric("ttft_all_p99", "ttft p99", "ms", _lat_all("ttft", "p99")),
    Metric("e2e_all_p50", "e2e p50", "ms", _lat_all("e2e", "p50")),
    Metric("e2e_all_p99", "e2e p99", "ms", _lat_all("e2e", "p99")),
    Metric("ttft_p50", "ttft p50 (ok only)", "ms", _lat("ttft", "p50")),
    Metric("ttft_p99", "ttft p99 (ok only)", "ms", _lat("ttft", "p99")),
    Metric("e2e_p50", "e2e p50 (ok only)", "ms", _lat("e2e", "p50")),
    Metric("e2e_p99", "e2e p99 (ok only)", "ms", _lat("e2e", "p99")),
    Metric("service_p99", "service p99 (ok only)", "ms", _lat("service", "p99")),
    Metric("schedule_lag_p99", "schedule lag p99", "ms", _lat("schedule_lag", "p99")),
    Metric("rpm_peak", "peak RPM", "per_minute", lambda a: a.get("rpm_peak")),
    Metric("tpm_peak", "peak TPM", "per_minute", lambda a: a.get("tpm_peak")),
)
BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class Delta:
    abs: float | None     # value - baseline, in the metric's unit (a fraction for ratios)
    pct: float | None     # percent of the baseline; None for ratios and a zero baseline
    pts: float | None     # percentage points, ratios only


@dataclass(frozen=True)
class Comparison:
    labels: tuple[str, ...]                             # labels[0] is the baseline
    values: dict[str, dict[str, float | None]]          # metric key -> label -> value
    deltas: dict[str, dict[str, Delta]]                 # metric key -> label (not baseline) -> delta
    settings: dict[str, str] = field(default_factory=dict)   # label -> the arm's settings, one line

    @property
    def baseline(self) -> str:
        return self.labels[0]

    def to_dict(self) -> dict:
        return {
            "baseline": self.baseline, "labels": list(self.labels),
            "metrics": [{"key": m.key, "label": m.label.strip(), "unit": _UNITS[m.kind],
                         "values": self.values[m.key],
                         "delta": {lab: vars(d) for lab, d in self.deltas[m.key].items()}}
                        for m in METRICS],
            "headline": headline(self),
            "settings": self.settings,
        }


_UNITS = {"count": "count", "ratio": "fraction", "usd": "USD", "ms": "ms", "per_minute": "per_minute", "s": "s"}


def delta(kind: str, value: float | None, base: float | None) -> Delta:
    """Delta of `value` against `base`; ratios in points, everything else absolute and %."""
    if value is None or base is None:
        return Delta(None, None, None)
    d = value - base
    if kind == "ratio":
        return Delta(d, None, d * 100.0)
    return Delta(d, (d / base * 100.0) if base else None, None)


def compare(columns: Sequence[tuple[str, Mapping[str, Any]]]) -> Comparison:
    """Every METRICS figure of each (label, arm) with its delta against the first column."""
    if not columns:
        raise ValueError("compare: expected at least one arm")
    labels = tuple(lab for lab, _ in columns)
    values: dict[str, dict[str, float | None]] = {}
    deltas: dict[str, dict[str, Delta]] = {}
    for m in METRICS:
        vals = {lab: _num(m.get(arm)) for lab, arm in columns}
        values[m.key] = vals
        base = vals[labels[0]]
        deltas[m.key] = {lab: delta(m.kind, vals[lab], base) for lab in labels[1:]}
    return Comparison(labels, values, deltas, {lab: arm_settings(arm) for lab, arm in columns})


def arm_settings(arm: Mapping[str, Any]) -> str:
    """What an arm sent, from its summary: model id, profile, cache TTL, service tier. A summary
    written before `service_tier` existed was sent at the default tier."""
    cache = f"cache {arm.get('cache_ttl', '-')}" if arm.get("cache_enabled", True) else "no cache"
    if arm.get("mode") == "batch":
        how = _batch(arm).get("cost_usd", {}).get("cache_pricing", "?")
        return f"{arm.get('model_id', '?')} ({arm.get('profile', '?')}), {cache}, batch (cost_usd: cache {how})"
    return (f"{arm.get('model_id', '?')} ({arm.get('profile', '?')}), {cache}, "
            f"tier {arm.get('service_tier') or 'default'}")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def groups_for(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[tuple[str, Mapping[str, Any]]]]:
    """What to compare: see the module docstring. `runs`: (run label, summary.json).
    Empty when the runs share no arm name and come from different scenarios."""
    if len(runs) == 1:
        return [[(name, arm) for name, arm in runs[0][1].get("arms", {}).items()]]
    names: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for run, summary in runs:
        for name, arm in summary.get("arms", {}).items():
            names.setdefault(name, []).append((f"{run}/{name}", arm))
    if any(len(v) > 1 for v in names.values()):
        return list(names.values())
    if len(scenarios_of(runs)) > 1:
        return []
    return [[col for cols in names.values() for col in cols]]


def scenarios_of(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, list[str]]:
    """scenario name -> labels of the runs of it, in order (summary.json `scenario`; "?" when absent)."""
    out: dict[str, list[str]] = {}
    for run, summary in runs:
        out.setdefault(str(summary.get("scenario") or "?"), []).append(run)
    return out


def scenario_note(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """"" when every run comes from one scenario; else a line saying which run is which
    and how arms are paired."""
    by = scenarios_of(runs)
    if len(by) < 2:
        return ""
    which = "; ".join(f"{name}: {', '.join(labels)}" for name, labels in by.items())
    return (f"these results come from {len(by)} different scenarios ({which}); only arms of the same name are "
            "compared, and their figures differ by scenario as well as by arm")


def unrelated_message(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Why runs of different scenarios with no arm name in common are not compared."""
    arms = "; ".join(f"{run} ({summary.get('scenario') or '?'}): {', '.join(summary.get('arms', {})) or 'no arms'}"
                     for run, summary in runs)
    return ("nothing to compare: the directories come from different scenarios and share no arm name "
            f"({arms}). compare pairs arms by name across runs; to compare arms of different names, put them "
            "in one scenario as [[arms]] and compare that run")


# ---- formatting --------------------------------------------------------------------


def fmt_value(kind: str, v: float | None) -> str:
    if v is None:
        return "-"
    if kind == "ratio":
        return f"{100 * v:.1f}%"
    if kind == "usd":
        return format_usd(v)
    if kind == "ms":
        return format_ms(v, sep="")
    if kind == "s":
        return f"{v:,.0f}s"
    return f"{v:,.0f}"


def fmt_delta(kind: str, d: Delta) -> str:
    """"+29.1 pts", "-$0.86 (-17 %)", "-180ms (-8 %)", "0"."""
    if d.abs is None:
        return "-"
    if kind == "ratio":
        return f"{d.pts:+.1f} pts"
    if d.abs == 0:
        return "0"
    sign = "+" if d.abs > 0 else "-"
    body = fmt_value(kind, abs(d.abs))
    pct = f" ({d.pct:+.0f} %)" if d.pct is not None else ""
    return f"{sign}{body}{pct}"


def headline(c: Comparison) -> list[str]:
    """One line per non-baseline column: "ttl-1h vs ttl-5m: cost per 1000 -17 %, warm ratio +29 pts, ..."."""
    lines = []
    for lab in c.labels[1:]:
        parts = []
        for key, name in (("cost_per_1000", "cost per 1000"), ("time_to_last_result_s", "time to last result"),
                          ("warm_ratio", "warm ratio"),
                          ("ttft_all_p99", "ttft p99"), ("e2e_all_p99", "e2e p99"),
                          ("throttle_rate", "throttled"), ("error_rate", "errors")):
            d = c.deltas[key][lab]
            if key in ("throttle_rate", "error_rate") and not (c.values[key][lab] or c.values[key][c.baseline]):
                continue  # no throttles or errors on either side: nothing to say
            if d.abs is None:
                continue
            if BY_KEY[key].kind == "ratio":
                parts.append(f"{name} {d.pts:+.0f} pts" if abs(d.pts) >= 1 else f"{name} {d.pts:+.1f} pts")
            elif d.pct is not None:
                parts.append(f"{name} {d.pct:+.0f} %")
        lines.append(f"{lab} vs {c.baseline}: " + (", ".join(parts) if parts else "no comparable figures"))
    return lines


def table_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: metric, baseline value, then value and delta for each other column."""
    headers = ["metric", c.baseline]
    for lab in c.labels[1:]:
        headers += [lab, f"vs {c.baseline}" if len(c.labels) == 2 else "delta"]
    rows = []
    for m in METRICS:
        row = [m.label, fmt_value(m.kind, c.values[m.key][c.baseline])]
        for lab in c.labels[1:]:
            row += [fmt_value(m.kind, c.values[m.key][lab]), fmt_delta(m.kind, c.deltas[m.key][lab])]
        rows.append(row)
    return headers, rows


def compare_text(comparisons: Sequence[Comparison]) -> str:
    """The comparisons as text: headline lines, each column's settings, then the table."""
    blocks = []
    for c in comparisons:
        headers, rows = table_rows(c)
        settings = [f"{lab}: {c.settings[lab]}" for lab in c.labels if lab in c.settings]
        blocks.append("\n".join([*headline(c), *settings, "", format_table(headers, rows)]) if len(c.labels) > 1
                      else format_table(headers, rows) + f"\n(only {c.baseline}: nothing to compare with)")
    return "\n\n".join(blocks)
