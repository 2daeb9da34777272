"""Reports from a results directory (never re-runs anything): `loadgen report`.

`summary_table` is the final block `loadgen run` prints: one row per arm.
`run_artifacts` is what `run` / `simulate` call at the end: plots, report.html and the
threshold verdicts (`announce` prints them; `after_run` does both).
`cmd_report` re-reads a results directory and prints everything: the run table,
per-arm detail, arms against the first, thresholds (exit 1 when one fails).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from loadgen.results.series import format_ms
from loadgen.exit_codes import EXIT_OK, EXIT_THRESHOLD


def _ms(v: float | None) -> str:
    """A table cell: "850ms", "1.62s", "-" for no data."""
    return "-" if v is None else format_ms(v, sep="")


def _pct(num: float, den: float) -> str:
    return "-" if not den else f"{100.0 * num / den:.1f}%"


def _row_values(name: str, arm: Mapping[str, Any]) -> list[str]:
    from loadgen.scenario.thresholds import latency_over_all

    req = arm["requests"]
    cache = arm["cache"]
    cost = arm["cost_usd"]
    warm_den = cache["warm"] + cache["cold"]
    # latency over every attempt (failed ones at the time they failed), as the thresholds
    # measure it; "-" for a summary that has only ok-only figures while attempts failed
    ttft = latency_over_all(arm, "ttft") or {}
    e2e = latency_over_all(arm, "e2e") or {}
    return [
        name,
        str(req["sent"]),
        str(req["ok"]),
        _pct(req["throttled"], req["sent"]),
        str(req["error"] + req["timeout"]),
        str(req["retries"]),
        _pct(cache["warm"], warm_den),
        str(cache["cold"]),
        _ms(ttft.get("p50")),
        _ms(ttft.get("p99")),
        _ms(e2e.get("p50")),
        _ms(e2e.get("p99")),
        f"${cost['total']:.4f}",
        f"${cost['per_1000']:.2f}",
    ]


HEADERS = ["arm", "sent", "ok", "throttled", "err+to", "retries", "warm", "cold",
           "ttft p50", "ttft p99", "e2e p50", "e2e p99", "cost", "per 1000"]


def failure_notes(summary: Mapping[str, Any]) -> list[str]:
    """One line per arm whose attempts did not all succeed, read beside the table's latency:
    how many failed, how, and the ok-only figures (the table's latency counts every attempt)."""
    notes = []
    for name, arm in summary["arms"].items():
        req = arm["requests"]
        failed = req["sent"] - req["ok"]
        if failed <= 0:
            continue
        how = ", ".join(f"{req[k]} {k}" for k in ("throttled", "error", "timeout") if req.get(k))
        lat = arm.get("latency_ms", {})
        ok_ttft, ok_e2e = lat.get("ttft") or {}, lat.get("e2e") or {}
        notes.append(f"{name}: {failed} of {req['sent']} attempts failed ({how}); the latency above counts them at "
                     f"the time they failed (a timeout at its deadline); ok only: ttft p50 {_ms(ok_ttft.get('p50'))} "
                     f"p99 {_ms(ok_ttft.get('p99'))}, e2e p50 {_ms(ok_e2e.get('p50'))} p99 {_ms(ok_e2e.get('p99'))}")
    return notes


def format_table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """Aligned text table: the first `left` columns (labels) left-aligned, the rest (figures) right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summary_table(summary: Mapping[str, Any]) -> str:
    """The per-arm summary block, with a header line of run facts."""
    rows = [_row_values(name, arm) for name, arm in summary["arms"].items()]
    facts = (f"{summary.get('scenario', '?')}: target {summary.get('target', '?')}, clock {summary.get('clock', '?')}"
             + (f" x{summary.get('time_scale') or 1:g}" if summary.get("clock") == "warp" else "")
             + (" (as scenario.toml sets it; no run.json)" if summary.get("clock_source") == "scenario.toml" else "")
             + f", {summary.get('scenario_s') or 0:.0f} s scenario time in {summary.get('wall_s') or 0:.1f} s wall"
             + (f", stopped: {summary['stopped']}" if summary.get("stopped") not in (None, "completed") else ""))
    lines = [facts, format_table(HEADERS, rows)]
    notes = failure_notes(summary)
    for name, arm in summary["arms"].items():
        mm = arm["cache"].get("mismatch", {})
        if mm.get("total"):
            notes.append(f"{name}: {mm['total']} request(s) where the cache state differed from loadgen's "
                         f"prediction ({', '.join(f'{k}: {v}' for k, v in mm.get('by_pair', {}).items())})"
                         + "".join(f"; {pair}: likely {cause}" for pair, cause in mm.get("likely_cause", {}).items()
                                   if cause))
    if notes:
        lines.append("\n".join(notes))
    return "\n".join(lines)


# =========================================================================== loadgen report
#
# `loadgen report DIR` re-reads a results directory (never re-runs anything) and prints
# the run table, per-arm detail, arms compared with the first, and the scenario's
# thresholds; it (re)writes DIR/plots/*.png and DIR/report.html unless --no-plots.

REPORT_HTML = "report.html"


@dataclass(frozen=True)
class Table:
    """A titled table of already formatted cells, rendered as text or HTML."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    left: int = 1               # label columns (left-aligned)

    def text(self) -> str:
        body = format_table(list(self.headers), [list(r) for r in self.rows], self.left)
        return "\n".join([self.title, body] + ([self.note] if self.note else []))


@dataclass(frozen=True)
class RunView:
    """What a results directory holds, read once for report, plots and HTML."""

    path: Path
    summary: dict
    attempts: tuple[dict, ...]
    thresholds: tuple[Any, ...]             # scenario.Threshold (expr, arm, line)
    quotas: dict[str, "tuple[int, int] | None"]  # arm -> (tpm, rpm) in force; None = unknown
    peaks_burndown: dict[str, float]        # arm (and "*") -> peak quota tokens per 60 s, with burndown
    notes: tuple[str, ...] = ()             # problems worth telling (scenario could not be re-read ...)
    attempts_read: bool = True              # False: requests.jsonl missing or unreadable (no peak TPM)
    histograms: "Mapping[str, Mapping[str, Any]] | None" = None  # arm -> metric -> HdrHistogram (us), in
    #                                         memory when the summary was rebuilt; None: read histograms/


def burndown_of(model_id: str) -> float:
    """Output-token quota burndown for a model id (5 for Claude 4.x); 1 for unknown models."""
    from loadgen.catalog.models import UnknownModel, lookup

    try:
        return lookup(model_id).output_burndown
    except UnknownModel:
        return 1.0


def quotas_for(summary: Mapping[str, Any], scenario: Any) -> dict[str, "tuple[int, int] | None"]:
    """arm -> (tpm, rpm) quota the emulator enforced for it (0 = none), None when not known:
    a real-AWS run (quotas live in the account's Service Quotas) or an external emulator."""
    arms = summary.get("arms", {})
    if scenario is None or summary.get("target") != "emulator" or getattr(scenario.target, "endpoint_url", None):
        return {a: None for a in arms}
    from loadgen.emulator.config import EmulatorConfig
    from loadgen.catalog.profiles import kind_of

    try:
        cfg = EmulatorConfig.from_mapping(scenario.emulator)
    except ValueError:
        return {a: None for a in arms}
    out = {}
    for name, arm in arms.items():
        mid = arm.get("model_id", "")
        lim = cfg.limit_for(mid, kind_of(mid))  # the emulator keys quotas by the id as called
        out[name] = (lim.tpm, lim.rpm)
    return out


def _scenario_of(path: Path) -> tuple[Any, list[str]]:
    """The copied scenario.toml parsed, or None and why not."""
    from loadgen.results.directory import SCENARIO_FILE
    from loadgen.scenario.parse import ScenarioError, loads

    p = path / SCENARIO_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        return None, [f"{p}: cannot read ({e.strerror or e}): thresholds and quotas not checked"]
    try:
        return loads(text, str(p)), []
    except ScenarioError as e:
        # A relative trace file does not travel with the copy; thresholds still can.
        return None, [f"{p}: does not validate where it was copied ({e.problems[0]}); "
                      "thresholds read from its [thresholds] table"]


def _raw_thresholds(path: Path) -> tuple[Any, ...]:
    """[thresholds] straight from the TOML, for a copy that no longer validates as a whole."""
    from loadgen._toml import toml
    from loadgen.results.directory import SCENARIO_FILE
    from loadgen.scenario.parse import Threshold

    try:
        raw = toml.loads((path / SCENARIO_FILE).read_text(encoding="utf-8")).get("thresholds", {})
    except (OSError, ValueError):  # unreadable or not TOML: the note from _scenario_of says so
        return ()
    out = [Threshold(expr=e, arm=None) for e in raw.get("all", []) if isinstance(e, str)]
    for arm, exprs in (raw.get("arms") or {}).items():
        out += [Threshold(expr=e, arm=arm) for e in exprs if isinstance(e, str)]
    return tuple(out)


# ---- the shape of summary.json -----------------------------------------------------------
#
# summary.json is read by people's tools and may be edited or truncated by hand: anything
# the report reads is checked first, so a malformed file is a clear error (exit 2), never
# a traceback. docs/results-format.md is the contract.

_NUMBER, _INT, _STR, _DICT, _LIST = "a number", "an integer", "a string", "an object", "a list"
_ARM_SHAPE: dict[str, tuple[str, bool]] = {   # key -> (kind, required)
    "requests": (_DICT, True), "cache": (_DICT, True), "tokens": (_DICT, True), "cost_usd": (_DICT, True),
    "latency_ms": (_DICT, True), "errors": (_DICT, False), "gap_buckets": (_LIST, False),
    "rpm_peak": (_NUMBER, False), "tpm_peak": (_NUMBER, False), "model_id": (_STR, False),
    "cache_ttl": (_STR, False), "profile": (_STR, False),
}
_SUB_SHAPE: dict[str, dict[str, tuple[str, bool]]] = {
    "requests": {k: (_INT, True) for k in ("sent", "ok", "throttled", "error", "timeout", "retries")},
    "cache": {"cold": (_INT, True), "warm": (_INT, True), "none": (_INT, True), "warm_ratio": (_NUMBER, True),
              "mismatch": (_DICT, False)},
    "cost_usd": {"total": (_NUMBER, True), "per_1000": (_NUMBER, True),
                 **{k: (_NUMBER, False) for k in ("input", "output", "cache_read", "cache_write")}},
}
_BUCKET_SHAPE = {"label": (_STR, True), "warm": (_INT, True), "cold": (_INT, True), "none": (_INT, False),
                 "warm_ratio": (_NUMBER, True), "lo_s": (_NUMBER, True)}
_TOP_SHAPE = {"arms": (_DICT, True), "scenario": (_STR, False), "target": (_STR, False), "clock": (_STR, False),
              "scenario_s": (_NUMBER, False), "wall_s": (_NUMBER, False), "time_scale": (_NUMBER, False),
              "rpm_peak": (_NUMBER, False), "tpm_peak": (_NUMBER, False), "stopped": (_STR, False)}


def _is(kind: str, v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return {_NUMBER: isinstance(v, (int, float)), _INT: isinstance(v, int), _STR: isinstance(v, str),
            _DICT: isinstance(v, dict), _LIST: isinstance(v, list)}[kind]


def _check_shape(obj: Mapping[str, Any], shape: Mapping[str, tuple[str, bool]], where: str) -> None:
    for key, (kind, required) in shape.items():
        if key not in obj:
            if required:
                raise ValueError(f"{where}{key} is missing; expected {kind}")
            continue
        v = obj[key]
        if v is None and kind == _NUMBER and not required:
            continue
        if not _is(kind, v):
            raise ValueError(f"{where}{key} is {json.dumps(v)[:40]}; expected {kind}")


def validate_summary(summary: Any, source: str = "summary.json") -> None:
    """ValueError naming the first key of `summary` (a summary.json dict) the report cannot
    read: a missing required figure or a value of the wrong type."""
    if not isinstance(summary, dict):
        raise ValueError(f"{source}: expected a JSON object with \"arms\", got {type(summary).__name__}")
    _check_shape(summary, _TOP_SHAPE, f"{source}: ")
    for name, arm in summary["arms"].items():
        where = f"{source}: arms.{name}"
        if not isinstance(arm, dict):
            raise ValueError(f"{where} is {json.dumps(arm)[:40]}; expected an object of figures")
        _check_shape(arm, _ARM_SHAPE, where + ".")
        for sub, shape in _SUB_SHAPE.items():
            _check_shape(arm[sub], shape, f"{where}.{sub}.")
        for k, v in arm["tokens"].items():
            if not _is(_NUMBER, v):
                raise ValueError(f"{where}.tokens.{k} is {json.dumps(v)[:40]}; expected a number")
        for k, v in arm.get("errors", {}).items():
            if not _is(_INT, v):
                raise ValueError(f"{where}.errors.{k} is {json.dumps(v)[:40]}; expected an integer")
        lat = arm["latency_ms"]
        for metric in ("ttft", "e2e"):
            if metric not in lat:
                raise ValueError(f"{where}.latency_ms.{metric} is missing; expected an object of percentiles")
        for metric, stats in lat.items():
            if not isinstance(stats, dict):
                raise ValueError(f"{where}.latency_ms.{metric} is {json.dumps(stats)[:40]}; expected an object")
            for k, v in stats.items():
                if v is not None and not _is(_NUMBER, v):
                    raise ValueError(f"{where}.latency_ms.{metric}.{k} is {json.dumps(v)[:40]}; "
                                     "expected a number of ms or null")
        mm = arm["cache"].get("mismatch", {})
        if not isinstance(mm, dict):
            raise ValueError(f"{where}.cache.mismatch: expected an object")
        _check_shape(mm, {"total": (_INT, False), "by_pair": (_DICT, False)}, f"{where}.cache.mismatch.")
        for i, b in enumerate(arm.get("gap_buckets", [])):
            if not isinstance(b, dict):
                raise ValueError(f"{where}.gap_buckets[{i}] is {json.dumps(b)[:40]}; expected an object")
            _check_shape(b, _BUCKET_SHAPE, f"{where}.gap_buckets[{i}].")
            if b.get("hi_s") is not None and not _is(_NUMBER, b["hi_s"]):
                raise ValueError(f"{where}.gap_buckets[{i}].hi_s: expected a number or null")


def sweep_hint(path: Path, command: str) -> str:
    """What to say when `command` is given a sweep's parent directory (sweep.json) instead of a run."""
    points = sorted(p.name for p in path.iterdir() if (p / "summary.json").exists())
    shown = ", ".join(points[:4]) + (f", ... ({len(points)} points)" if len(points) > 4 else "")
    return (f"{path} is a sweep directory (sweep.json, sweep.csv): one results directory per point"
            + (f" ({shown})" if points else "") + ". Report one point with `loadgen report "
            + f"{path / (points[0] if points else 'NN-<point>')}`, or compare points with `loadgen compare "
            + f"{path}/*/`; the sweep's own table is sweep.csv")


def _needs_rebuild(path: Path, command: str) -> bool:
    """True for a killed run (requests.jsonl, no summary.json), False for a finished one;
    ValueError for a sweep's parent, FileNotFoundError for anything else."""
    from loadgen.results.directory import REQUESTS_FILE, SUMMARY_FILE

    if (path / "sweep.json").exists() and not (path / SUMMARY_FILE).exists():
        raise ValueError(sweep_hint(path, command))
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a directory; expected a loadgen results directory")
    if (path / SUMMARY_FILE).exists():
        return False
    if (path / REQUESTS_FILE).exists():
        return True
    raise FileNotFoundError(f"{path}: no summary.json and no {REQUESTS_FILE}; expected a loadgen results "
                            "directory (the folder `loadgen run` prints after \"results:\")")


def _rebuilt(path: Path, attempts: Sequence[Mapping[str, Any]], scenario: Any) -> tuple[dict, dict, str]:
    """A killed run's summary from its attempts: (summary, arm -> metric -> HdrHistogram, the note saying so)."""
    from loadgen.results.metrics import LATENCY_METRICS
    from loadgen.results.rebuild import rebuild_summary
    from loadgen.results.directory import REQUESTS_FILE, SUMMARY_FILE, load_run_facts

    summary, metrics = rebuild_summary(attempts, scenario, results_dir=path, run_facts=load_run_facts(path))
    histograms = {a: {m: metrics.histogram(a, m) for m in LATENCY_METRICS} for a in metrics.arm_names}
    note = (f"{path / SUMMARY_FILE}: missing, the run did not finish (killed?); summary rebuilt from "
            f"{len(attempts)} attempt(s) in {REQUESTS_FILE}, up to {summary['scenario_s']:.0f} s of scenario time. "
            "Not written to disk.")
    return summary, histograms, note


def read_summary(results_dir: str | Path, command: str = "compare") -> tuple[dict, str]:
    """(summary, note) of a results directory: summary.json checked by `validate_summary`
    (note ""), or for a killed run the summary `load_view` rebuilds from requests.jsonl
    (the same path, so `report` and `compare` agree), and the note saying so. Reads
    requests.jsonl only for a killed run. ValueError / OSError name the path."""
    from loadgen.results.directory import SUMMARY_FILE, load_attempts, load_summary

    path = Path(results_dir)
    if not _needs_rebuild(path, command):
        summary = load_summary(path)
        validate_summary(summary, str(path / SUMMARY_FILE))
        return summary, ""
    scenario, _ = _scenario_of(path)
    summary, _, note = _rebuilt(path, tuple(load_attempts(path)), scenario)
    return summary, note


def load_view(results_dir: str | Path, summary: Mapping[str, Any] | None = None, scenario: Any = None) -> RunView:
    """Read a results directory (summary.json, requests.jsonl, scenario.toml) for reporting.

    `summary` / `scenario`: pass them when the caller has them (after a run), to skip
    reading them back. A directory with requests.jsonl but no summary.json (a run killed
    before it finished) gets its summary rebuilt from the attempts (`loadgen.results.rebuild`),
    marked `"stopped": "killed (rebuilt from requests.jsonl)"`; nothing is written for it.
    FileNotFoundError when there is neither.
    """
    from loadgen.results import series
    from loadgen.results.directory import REQUESTS_FILE, SUMMARY_FILE, load_attempts, load_summary

    path = Path(results_dir)
    rebuild = summary is None and _needs_rebuild(path, "report")
    notes: list[str] = []
    if scenario is None:
        scenario, notes = _scenario_of(path)
    thresholds = tuple(scenario.thresholds) if scenario is not None else _raw_thresholds(path)
    if summary is None and not rebuild:
        summary = load_summary(path)
        validate_summary(summary, str(path / SUMMARY_FILE))
    if not rebuild:
        summary = dict(summary)
    try:
        attempts = tuple(load_attempts(path))
        attempts_read = True
    except FileNotFoundError:
        attempts, attempts_read = (), False
        notes.append(f"{path / REQUESTS_FILE}: missing; time series and gap plots are empty, "
                     "tpm thresholds cannot be measured")
    except ValueError as e:
        if rebuild:
            raise
        attempts, attempts_read = (), False
        notes.append(str(e))
    histograms = None
    if rebuild:
        summary, histograms, note = _rebuilt(path, attempts, scenario)
        notes.insert(0, note)
    peaks = series.peak_quota_tpm(attempts, burndown_of) if attempts else {}
    return RunView(path, summary, attempts, thresholds, quotas_for(summary, scenario), peaks, tuple(notes),
                   attempts_read, histograms)


def percentile_from_histograms(path: Path, in_memory: "Mapping[str, Mapping[str, Any]] | None" = None
                               ) -> Callable[[str, str, float], "float | None"]:
    """A thresholds.PercentileFn reading histograms/<arm>.<metric>.hlog (ms), or `in_memory`
    (arm -> metric -> HdrHistogram in us) when given. Each file is read once: several
    thresholds often ask the same histogram (p50 and p99 of ttft)."""
    from loadgen.results.directory import HISTOGRAM_DIR, read_histogram, safe_name

    cache: dict[tuple[str, str], Any] = {}

    def hist(arm: str, metric: str) -> Any:
        if in_memory is not None:
            return in_memory.get(arm, {}).get(metric)
        if (arm, metric) not in cache:
            p = path / HISTOGRAM_DIR / f"{safe_name(arm)}.{metric}.hlog"
            cache[arm, metric] = read_histogram(p) if p.exists() else None
        return cache[arm, metric]

    def get(arm: str, metric: str, pct: float) -> float | None:
        h = hist(arm, metric)
        if h is None:
            return None
        return h.get_value_at_percentile(pct) / 1000.0 if h.get_total_count() else None

    return get


def check_thresholds(view: RunView) -> list:
    from loadgen.scenario import thresholds
    # tpm is the same figure as the quota table's "peak TPM x burndown" column: one function.
    return thresholds.check(view.thresholds, view.summary, percentile=percentile_from_histograms(view.path, view.histograms),
                            peak_tpm=view.peaks_burndown if view.attempts_read else None)


# ---- tables ------------------------------------------------------------------------


def _int(v: Any) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.0f}"


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:.4f}" if v < 10 else f"${v:,.2f}"


LAT_STATS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"), ("mean", "mean"))


def detail_tables(view: RunView) -> list[Table]:
    """Per-arm detail: requests and errors, cache, cost, latency, throughput vs quota, gaps."""
    arms = view.summary.get("arms", {})
    tables = []
    rows = []
    for name, a in arms.items():
        r = a["requests"]
        errs = ", ".join(f"{k} {v}" for k, v in a.get("errors", {}).items()) or "-"
        rows.append((name, _int(r["sent"]), _int(r["ok"]), f"{_int(r['throttled'])} ({_pct(r['throttled'], r['sent'])})",
                     _int(r["error"]), _int(r["timeout"]), _int(r["retries"]), errs))
    tables.append(Table("Requests (attempts, retries included)",
                        ("arm", "sent", "ok", "throttled", "error", "timeout", "retries", "not ok by error code"),
                        tuple((*r[:-1], r[-1]) for r in rows)))
    rows = []
    for name, a in arms.items():
        c, t = a["cache"], a["tokens"]
        split = ""
        if t.get("cache_write_5m") or t.get("cache_write_1h"):
            split = f" (5m {_int(t.get('cache_write_5m', 0))}, 1h {_int(t.get('cache_write_1h', 0))})"
        mm = c.get("mismatch", {}).get("total", 0)
        rows.append((name, a.get("cache_ttl", "-") if a.get("cache_enabled", True) else "off",
                     _int(c["cold"]), _int(c["warm"]), _int(c["none"]), f"{100 * c['warm_ratio']:.1f}%",
                     _int(t.get("cache_write")) + split, _int(t.get("cache_read")), _int(t.get("input")),
                     _int(t.get("output")), _int(mm)))
    tables.append(Table("Prompt cache (ok attempts by observed state; tokens over all attempts)",
                        ("arm", "ttl", "cold", "warm", "none", "warm ratio", "write tokens", "read tokens",
                         "uncached input", "output", "mismatch"), tuple(rows),
                        "warm ratio = warm / (warm + cold); mismatch: the cache state differed from loadgen's "
                        "prediction"))
    rows = []
    for name, a in arms.items():
        cu = a["cost_usd"]
        rows.append((name, _usd(cu.get("input")), _usd(cu.get("output")), _usd(cu.get("cache_write")),
                     _usd(cu.get("cache_read")), _usd(cu["total"]), _usd(cu["per_1000"])))
    tables.append(Table("Cost (USD)", ("arm", "input", "output", "cache write", "cache read", "total",
                                       "per 1000 ok"), tuple(rows)))
    rows = []
    order = ("ttft", "ttft_all", "e2e", "e2e_all", "service", "service_all", "schedule_lag")
    for name, a in arms.items():
        lats = a.get("latency_ms", {})
        for metric in sorted(lats, key=lambda m: order.index(m) if m in order else len(order)):
            lat = lats[metric]
            rows.append((name, metric, *(_ms(lat.get(k)) for k, _ in LAT_STATS), _int(lat.get("count")),
                         _int(lat.get("failed"))))
    tables.append(Table("Latency", ("arm", "metric", *(lab for _, lab in LAT_STATS), "n", "failed"), tuple(rows),
                        "ttft and e2e from the intended start (no coordinated omission); service from the "
                        "actual send; schedule lag = send - intended. ttft/e2e/service: ok attempts only, "
                        "`failed` = the failed attempts they leave out. ttft_all/e2e_all/service_all: every "
                        "attempt, `failed` of them counted at the time they failed (a timeout at its deadline; "
                        "a failure before any token at that time as its ttft); these are what the headline "
                        "table and the thresholds read. schedule_lag: first attempts, failed ones included.",
                        left=2))
    tables.append(quota_table(view))
    tables.append(gap_table(arms))
    return tables


def quota_table(view: RunView) -> Table:
    arms = view.summary.get("arms", {})
    rows = []
    for name, a in arms.items():
        q = view.quotas.get(name)
        tpm_b = view.peaks_burndown.get(name)
        if q is None:
            rq = tq = "unknown"
            use = "-"
        else:
            rq = _int(q[1]) if q[1] else "off"
            tq = _int(q[0]) if q[0] else "unlimited"
            use = f"{100 * tpm_b / q[0]:.1f}%" if q[0] and tpm_b is not None else "-"
        rows.append((name, _int(a.get("rpm_peak")), rq, _int(a.get("tpm_peak")),
                     _int(tpm_b), tq, use))
    if len(arms) > 1:
        s = view.summary
        rows.append(("all arms", _int(s.get("rpm_peak")), "", _int(s.get("tpm_peak")),
                     _int(view.peaks_burndown.get("*")), "", ""))
    return Table("Throughput against the quota (peaks in any 60 s of scenario time)",
                 ("arm", "peak RPM", "RPM quota", "peak TPM", "peak TPM x burndown", "TPM quota", "of quota"),
                 tuple(rows),
                 "peak TPM = input + cache write + output (summary.json); x burndown applies the output "
                 "factor Bedrock charges the quota (5 for Claude 4.x). Arms on the same model id share "
                 "one quota: compare the all-arms row with it. Throttling can start below 100 %: at the "
                 "start of a request the quota holds all its input (cache reads too) + maxTokens.")


def gap_table(arms: Mapping[str, Any]) -> Table:
    names = list(arms)
    labels = [b["label"] for b in next(iter(arms.values()), {}).get("gap_buckets", [])]
    rows = []
    for i, lab in enumerate(labels):
        cells = []
        for n in names:
            bs = arms[n].get("gap_buckets") or []
            if i >= len(bs):
                cells.append("-")
                continue
            b = bs[i]
            k = b["warm"] + b["cold"]
            cells.append(f"{100 * b['warm_ratio']:.0f}% of {k}" if k else "-")
        rows.append((lab, *cells))
    return Table("Cache warm ratio by gap since the previous call on the same prefix",
                 ("gap", *names), tuple(rows),
                 "With the 5-minute TTL the ratio should fall across 4-5m / 5-6m; with the 1-hour TTL, at 60m.")


def report_text(view: RunView, results: Sequence[Any]) -> str:
    from loadgen.report.compare import compare, compare_text
    from loadgen.scenario.thresholds import format_results

    parts = [summary_table(view.summary)]
    if view.summary.get("rebuilt"):
        parts.insert(0, "REBUILT: " + view.notes[0])   # before any figure: this run did not finish
    parts += [t.text() for t in detail_tables(view)]
    if len(view.summary.get("arms", {})) > 1:
        parts.append("Arms compared with the first\n" + compare_text([compare(list(view.summary["arms"].items()))]))
    if results:
        parts.append("Thresholds\n" + format_results(results))
    parts += list(view.notes[1:] if view.summary.get("rebuilt") else view.notes)
    return "\n\n".join(parts)


def report_dict(view: RunView, results: Sequence[Any], plots: Sequence[Path] = ()) -> dict:
    from loadgen.report.compare import compare

    arms = view.summary.get("arms", {})
    return {
        "results_dir": str(view.path),
        "rebuilt": bool(view.summary.get("rebuilt")),   # summary rebuilt from requests.jsonl (killed run)
        "summary": view.summary,
        "quota": {name: ({"tpm": q[0], "rpm": q[1]} if q is not None else None) for name, q in view.quotas.items()},
        "tpm_peak_burndown": view.peaks_burndown,
        "compare": compare(list(arms.items())).to_dict() if arms else None,
        "thresholds": [r.to_dict() for r in results],
        "thresholds_failed": sum(r.failed for r in results),
        "plots": [str(p) for p in plots],
        "notes": list(view.notes),
    }


# ---- writing plots and the page ------------------------------------------------------


def write_artifacts(view: RunView, results: Sequence[Any]) -> tuple[list[Path], Path | None, list[str]]:
    """DIR/plots/*.png and DIR/report.html; (plots, html, warnings). A plot that fails
    is a warning, not a lost run."""
    from loadgen.report import html as html_report
    from loadgen.report import plots
    warnings: list[str] = []
    written: list[Path] = []
    try:
        written = plots.write_plots(view.path, view.summary, view.attempts, quotas=view.quotas,
                                    burndown=burndown_of, histograms=view.histograms)
    except Exception as e:  # noqa: BLE001 - matplotlib errors are many; the tables still stand
        warnings.append(f"plots not written: {type(e).__name__}: {e}")
    html = None
    try:
        html = html_report.write(view, results, detail_tables(view), written)
    except OSError as e:
        warnings.append(f"{REPORT_HTML} not written: {e}")
    return written, html, warnings


def run_artifacts(results_dir: Path, summary: dict, scenario: Any) -> tuple[list, Path | None, list[str]]:
    """Plots, report.html and the threshold verdicts of a run just finished, printing nothing:
    (thresholds.Result list, report.html path or None, warnings)."""
    view = load_view(results_dir, summary=summary, scenario=scenario)
    results = check_thresholds(view)
    _, html, warnings = write_artifacts(view, results)
    return results, html, warnings


def announce(results: Sequence[Any], html: Path | None, warnings: Sequence[str], *, quiet: bool = False) -> None:
    """Print what `run_artifacts` did: warnings on stderr always; the threshold lines and the
    report path on stdout unless `quiet`."""
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr, flush=True)
    if quiet:
        return
    if results:
        from loadgen.scenario.thresholds import format_results

        print("thresholds:\n" + format_results(results), flush=True)
    if html is not None:
        print(f"report: {html}", flush=True)


def after_run(results_dir: Path, summary: dict, scenario: Any) -> int:
    """End of `loadgen run` / `simulate`: write plots and report.html, print the thresholds.

    Returns 1 (EXIT_THRESHOLD) if any threshold failed, else 0.
    """
    results, html, warnings = run_artifacts(results_dir, summary, scenario)
    announce(results, html, warnings)
    return EXIT_THRESHOLD if any(r.failed for r in results) else EXIT_OK
