"""A results directory read once for reporting: `load_view` -> `RunView`.

Reads summary.json (checked by `summary_shape.validate_summary`), requests.jsonl and the
copied scenario.toml; never re-runs anything. requests.jsonl is streamed once into a
`series.RunSeries` (bounded: per-minute counts, the rolling quota peak, binned cost and
gaps), never held whole, so a report of 10M attempts needs the memory of one of 10k. A run killed before it wrote summary.json
(requests.jsonl, no summary.json) gets its summary rebuilt from the attempts
(`loadgen.results.rebuild`), marked as such, and nothing is written for it; `report` and
`compare` (`read_summary`) take that same path, so they agree. A sweep's parent
directory is refused with a hint at its points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from loadgen._toml import toml
from loadgen.catalog.models import UnknownModel, lookup
from loadgen.catalog.profiles import kind_of
from loadgen.emulator.config import EmulatorConfig
from loadgen.report.summary_shape import validate_summary
from loadgen.results.directory import (
    REQUESTS_FILE, SCENARIO_FILE, SUMMARY_FILE, load_attempts, load_run_facts, load_summary,
)
from loadgen.results.histograms import LATENCY_METRICS
from loadgen.results.rebuild import rebuild_summary
from loadgen.results.series import RunSeries
from loadgen.scenario import ScenarioError, Threshold, loads


@dataclass(frozen=True)
class RunView:
    """What a results directory holds, read once for report, plots and HTML."""

    path: Path
    summary: dict
    series: RunSeries                       # requests.jsonl folded (empty when it could not be read)
    thresholds: tuple[Any, ...]             # scenario.Threshold (expr, arm, line)
    quotas: dict[str, "tuple[int, int] | None"]  # arm -> (tpm, rpm) in force; None = unknown
    peaks_burndown: dict[str, float]        # arm (and "*") -> peak quota tokens per 60 s, with burndown
    notes: tuple[str, ...] = ()             # problems worth telling (scenario could not be re-read ...)
    attempts_read: bool = True              # False: requests.jsonl missing or unreadable (no peak TPM)
    histograms: "Mapping[str, Mapping[str, Any]] | None" = None  # arm -> metric -> HdrHistogram (us), in
    #                                         memory when the summary was rebuilt; None: read histograms/


def burndown_of(model_id: str) -> float:
    """Output-token quota burndown for a model id (5 for Claude 4.x); 1 for unknown models."""
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
    p = path / SCENARIO_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        return None, [f"{p}: cannot read ({e.strerror or e}): thresholds and quotas not checked"]
    try:
        return loads(text, str(p), check_emulator=EmulatorConfig.from_mapping), []
    except ScenarioError as e:
        # A relative trace file does not travel with the copy; thresholds still can.
        return None, [f"{p}: does not validate where it was copied ({e.problems[0]}); "
                      "thresholds read from its [thresholds] table"]


def _raw_thresholds(path: Path) -> tuple[Any, ...]:
    """[thresholds] straight from the TOML, for a copy that no longer validates as a whole."""
    try:
        raw = toml.loads((path / SCENARIO_FILE).read_text(encoding="utf-8")).get("thresholds", {})
    except (OSError, ValueError):  # unreadable or not TOML: the note from _scenario_of says so
        return ()
    out = [Threshold(expr=e, arm=None) for e in raw.get("all", []) if isinstance(e, str)]
    for arm, exprs in (raw.get("arms") or {}).items():
        out += [Threshold(expr=e, arm=arm) for e in exprs if isinstance(e, str)]
    return tuple(out)


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


def _rebuilt(path: Path, attempts: Iterable[Mapping[str, Any]], scenario: Any) -> tuple[dict, dict, str]:
    """A killed run's summary from its attempts (read once): (summary, arm -> metric ->
    HdrHistogram, the note saying so)."""
    summary, metrics = rebuild_summary(attempts, scenario, results_dir=path, run_facts=load_run_facts(path))
    histograms = {a: {m: metrics.histogram(a, m) for m in LATENCY_METRICS} for a in metrics.arm_names}
    n = sum(a["requests"]["sent"] for a in summary["arms"].values())
    note = (f"{path / SUMMARY_FILE}: missing, the run did not finish (killed?); summary rebuilt from "
            f"{n} attempt(s) in {REQUESTS_FILE}, up to {summary['scenario_s']:.0f} s of scenario time. "
            "Not written to disk.")
    return summary, histograms, note


def read_summary(results_dir: str | Path, command: str = "compare") -> tuple[dict, str]:
    """(summary, note) of a results directory: summary.json checked by `validate_summary`
    (note ""), or for a killed run the summary `load_view` rebuilds from requests.jsonl
    (the same path, so `report` and `compare` agree), and the note saying so. Reads
    requests.jsonl only for a killed run. ValueError / OSError name the path."""
    path = Path(results_dir)
    if not _needs_rebuild(path, command):
        summary = load_summary(path)
        validate_summary(summary, str(path / SUMMARY_FILE))
        return summary, ""
    scenario, _ = _scenario_of(path)
    summary, _, note = _rebuilt(path, load_attempts(path), scenario)
    return summary, note


def load_view(results_dir: str | Path, summary: Mapping[str, Any] | None = None, scenario: Any = None) -> RunView:
    """Read a results directory (summary.json, requests.jsonl, scenario.toml) for reporting.

    `summary` / `scenario`: pass them when the caller has them (after a run), to skip
    reading them back. A directory with requests.jsonl but no summary.json (a run killed
    before it finished) gets its summary rebuilt from the attempts (`loadgen.results.rebuild`),
    marked `"stopped": "killed (rebuilt from requests.jsonl)"`; nothing is written for it.
    FileNotFoundError when there is neither.
    """
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
    histograms = None
    if rebuild:
        # a second pass below; each streams the file
        summary, histograms, note = _rebuilt(path, load_attempts(path), scenario)
        notes.insert(0, note)
    try:
        run_series = _fold(path)
        attempts_read = True
    except FileNotFoundError:
        run_series, attempts_read = RunSeries(burndown_of), False
        notes.append(f"{path / REQUESTS_FILE}: missing; time series and gap plots are empty, "
                     "tpm thresholds cannot be measured")
    except ValueError as e:
        run_series, attempts_read = RunSeries(burndown_of), False
        notes.append(str(e))
    peaks = run_series.peak_quota_tpm() if run_series.attempts else {}
    return RunView(path, summary, run_series, thresholds, quotas_for(summary, scenario), peaks, tuple(notes),
                   attempts_read, histograms)


def _fold(path: Path) -> RunSeries:
    """requests.jsonl streamed into a RunSeries. Its quota peaks are exact when attempts come
    within the reorder lag of time order (one process writes them as they end); when some
    came later (batch results booked at the end, parts written one after another) the
    file is read once more with a lag that covers them, which is exact again."""
    folded = RunSeries.of(load_attempts(path), burndown=burndown_of)
    if not folded.peaks_exact:
        again = RunSeries.of(load_attempts(path), burndown=burndown_of, lag_s=folded.max_late_s + 1.0)
        folded.peaks = again.peaks
    return folded
