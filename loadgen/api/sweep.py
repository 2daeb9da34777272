"""What-if sweeps: the scenario simulated at every point of `--sweep KEY=V1,V2,...`.

Each point is the scenario's TOML text with the swept keys set (loadgen.scenario.sweep),
parsed like any file, all checked before the first point runs. Points run in virtual
time, each into its own results directory under `<out>/<name>-sweep-<UTC time>/`, beside
sweep.json, sweep.csv and a cost chart per axis: one after the other, or side by side
(`--workers N`, `--cluster ray`: one point is one job of api/fanout.py, run whole, so
every figure is the one the serial sweep gives; rows are written in point order).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from loadgen import __version__
from loadgen._toml import toml
from loadgen.api.fanout import SERIAL, Fanout, Placement, open_fanout, read_files, run_all, write_files
from loadgen.api.result import RunResult, SweepResult
from loadgen.api.session import RunState, claim_results_dir, finish
from loadgen.api.setup import Overrides, apply_overrides, apply_sets, emulator_config, make_pricer
from loadgen.api.signals import StopFlag, notice
from loadgen.api.virtual import run_virtual
from loadgen.emulator.config import EmulatorConfig
from loadgen.engine.clock import VirtualClock
from loadgen.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLD
from loadgen.report.sweep_chart import sweep_chart
from loadgen.results.directory import ResultsDir, safe_name
from loadgen.scenario import sweep
from loadgen.scenario import Scenario, ScenarioError, loads


def sweep_flags(axes: Mapping[str, Any] | Sequence[str]) -> list[str]:
    """`--sweep` flags from `{key: [values]}` (a value list, or one "V1,V2" string); flags pass through."""
    if isinstance(axes, Mapping):
        return [f"{k}={v if isinstance(v, str) else ','.join(str(x) for x in v)}" for k, v in axes.items()]
    return list(axes)


def sweep_scenarios(sc: Scenario, flags: Sequence[str], ov: Overrides
                    ) -> tuple[list[Any], list[Any], list[tuple[Any, Scenario, str]]]:
    """(axes, points, [(point, scenario, toml text)]) for every point, all checked before any runs.

    The points edit the scenario's own text (`sc.source`), then `ov` applies to each.
    Raises ValueError (a flag or a swept value), whose messages name the flag, key and value.
    """
    axes = sweep.parse_axes(flags)
    sets = list(ov.sets)
    if sets:  # --set edits the base every point starts from (and its scenario.toml shows)
        based = apply_sets(sc, ov.sets)  # ValueError on a bad --set first
        both = {sweep.split_key(f.partition("=")[0].strip()) for f in ov.sets} & {a.parts for a in axes}
        if both:
            raise ValueError(f"--set {'.'.join(sorted(both)[0])}: the key is also swept; give it in --sweep only")
        sc, ov = based, dataclasses.replace(ov, sets=())
        base_note = [f"on a base with --set {', '.join(sets)}"]
    else:
        base_note = []
    path = sc.path
    raw = toml.loads(sc.source)
    pts = sweep.points(axes)
    done: list[tuple[Any, Scenario, str]] = []
    problems: list[str] = []
    for p in pts:
        notes: list[str] = []
        try:
            doc = sweep.apply(raw, axes, p, notes)
        except sweep.SweepError as e:
            raise ValueError(str(e)) from None
        setting = ", ".join(f"{k} = {v}" for k, v in p.values)
        body = sweep.dumps(doc, header="\n".join([f"loadgen simulate --sweep point {p.index}: {setting}",
                                                  *(f"  and {n}" for n in notes), *base_note,
                                                  f"generated from {path} (comments dropped)"]))
        try:
            point_sc = apply_overrides(loads(body, path, check_emulator=EmulatorConfig.from_mapping), ov)
        except ScenarioError as e:
            # lines refer to the generated text; the key and message are what matter here
            for line in e.problems:
                msg = line.split(": ", 1)[1] if line.startswith(path + ":") else line
                problems.append(f"--sweep {setting}: {msg}")
            continue
        done.append((p, point_sc, body))
    if problems:
        raise ValueError("\n".join(dict.fromkeys(problems)))
    return axes, pts, done


def run_sweep(sc: Scenario, flags: Sequence[str], ov: Overrides, *, out: str | Path = "results",
              progress: Callable[[str], None] | None = None, signals: bool = True,
              placement: Placement = SERIAL, results_dir: str | Path | None = None) -> SweepResult:
    """Run every point (ValueError naming the flag, key or value before any runs) under a
    new `<out>/<name>-sweep-<UTC>/`, or exactly `results_dir` (empty or new).

    `placement`: where the points run (`--workers N`, `--cluster ray`): one point is one
    job, whole (its emulator model is never split), so the figures are the serial ones.
    `exit_code`: 130 if interrupted (the points done are written), else 1 if any point
    failed a threshold (k6-like: a sweep in CI fails when one of its runs would), else 0.
    """
    axes, pts, runs = sweep_scenarios(sc, flags, ov)
    configs = [(make_pricer(s), emulator_config(s)) for _, s, _ in runs]  # PricingError / [emulator]: ValueError

    name = runs[0][1].name
    fan = open_fanout(placement) if placement.parallel else None  # RayMissing / ConnectionError: before any file
    try:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        parent = (claim_results_dir(results_dir) if results_dir is not None
                  else _fresh_dir(Path(out) / f"{safe_name(name)}-sweep-{stamp}"))
        if progress is not None:
            where = f" on {fan.where}" if fan is not None else ""
            progress(f"loadgen {__version__}: sweep of {name}, {len(runs)} point(s) "
                     f"({' x '.join(f'{a.key} ({len(a.values)})' for a in axes)}), virtual time{where}; "
                     f"results in {parent}")
        return _sweep(parent, axes, runs, configs, ov, fan, progress, signals)
    finally:
        if fan is not None:
            fan.close()


@dataclass
class PointDone:
    """One point run to its end, as the parent needs it (picklable: it may come from a worker)."""

    index: int
    summary: dict[str, Any]              # summary.json's dict as finish() made it
    verdicts: list[Any]                  # thresholds.Result per threshold and arm
    result: RunResult
    wall_s: float
    files: dict[str, bytes] | None = None   # the results directory, when the job ran elsewhere
    ran_in: str | None = None            # the folder it ran in there


def run_point(index: int, path: str, body: str, point_sc: Scenario, max_requests: int | None, ship: bool,
              pricer: Any = None, cfg: Any = None, signals: bool = False,
              ran: Callable[[], None] | None = None) -> PointDone:
    """Simulate one sweep point into the results directory `path` (a job: see api/fanout.py).

    `ship`: the job may run on another machine; it writes into a temporary folder and
    returns the files. The pricer and emulator config are rebuilt from `point_sc` when not
    given (the parent's pricer is a closure and does not pickle). `ran`: called as soon as
    the simulation ends, before the files are written (the serial sweep puts its Ctrl-C
    handler back there, as the event loop removed it).
    """
    t0 = time.monotonic()
    where = Path(tempfile.mkdtemp(prefix="loadgen-point-")) / Path(path).name if ship else Path(path)
    try:
        where.mkdir()
        out_dir = ResultsDir(where)
        out_dir.write_scenario(body)
        state = RunState(point_sc, VirtualClock(), out_dir)
        try:
            run_virtual(state, pricer or make_pricer(point_sc), cfg or emulator_config(point_sc),
                        max_requests=max_requests, signals=signals)
        finally:
            out_dir.close()
            if ran is not None:
                ran()
        result = finish(state)
        assert state.summary is not None
        done = PointDone(index, state.summary, state.verdicts, result, time.monotonic() - t0)
        if ship:
            done.files, done.ran_in = read_files(where), str(where)
        return done
    finally:
        if ship:
            shutil.rmtree(where.parent, ignore_errors=True)


def _sweep(parent: Path, axes: Sequence[Any], runs: list[tuple[Any, Scenario, str]], configs: list[tuple[Any, Any]],
           ov: Overrides, fan: Fanout | None, progress: Callable[[str], None] | None, signals: bool) -> SweepResult:
    finished: dict[int, PointDone] = {}
    warnings: list[str] = []
    interrupted, cut_short = False, []
    wall0 = time.monotonic()

    def report(p: Any, d: PointDone) -> None:
        if progress is None:
            return
        n = sum(s["requests"]["sent"] for s in d.summary["arms"].values())
        verdicts = [v for v in d.verdicts if v.status != "SKIP"]
        bad = [v for v in verdicts if v.failed]
        verdict = f", thresholds FAIL ({len(bad)} of {len(verdicts)})" if bad else \
            (", thresholds pass" if verdicts else "")
        progress(f"  [{p.index + 1}/{len(runs)}] {p.label(axes)}: {n} attempts{verdict}, {d.wall_s:.2f} s wall")

    with StopFlag("the point" if fan is None else "the points in hand", enabled=signals) as stop:
        if fan is None:
            for i, ((p, point_sc, body), (pricer, cfg)) in enumerate(zip(runs, configs)):
                path = parent / p.dirname(axes)
                try:
                    d = run_point(i, str(path), body, point_sc, ov.max_requests, False, pricer, cfg, signals,
                                  ran=stop.install)
                except KeyboardInterrupt:
                    # a second Ctrl-C, or one in the instant the loop hands the handlers back:
                    # this point is incomplete; the points before it stand
                    interrupted, cut_short = True, [str(path.relative_to(parent))]
                    break
                finished[i] = d
                report(p, d)
                if d.result.interrupted or stop.set:
                    interrupted = d.result.interrupted or len(finished) < len(runs)
                    break
        else:
            started: list[int] = []

            def landed(i: Any, d: PointDone) -> None:
                p = runs[i][0]
                if d.files is not None:  # ran elsewhere: its directory comes back as bytes
                    path = parent / p.dirname(axes)
                    write_files(path, d.files, was=d.ran_in)
                    report_html = path / "report.html" if d.result.report is not None else None
                    d.result = dataclasses.replace(d.result, path=path, report=report_html)
                    d.files = None
                finished[i] = d
                report(p, d)

            jobs = [(i, run_point, (i, str(parent / p.dirname(axes)), body, point_sc, ov.max_requests,
                                    fan.ships_files)) for i, (p, point_sc, body) in enumerate(runs)]
            try:
                run_all(fan, jobs, landed, stop, started=started)
            except KeyboardInterrupt:  # the second Ctrl-C: the points in hand were stopped
                interrupted = True
                cut_short = [runs[i][0].dirname(axes) for i in started if i not in finished]
            interrupted = interrupted or len(finished) < len(runs)

        rows: list[dict[str, Any]] = []
        done: list[dict[str, Any]] = []           # sweep.json "points": one per point run, with its verdicts
        results: list[RunResult] = []
        failed: list[tuple[Any, list[Any]]] = []  # (point, failed thresholds.Result) for the printout
        for i in sorted(finished):  # in point order, however the points were scheduled
            d, p = finished[i], runs[i][0]
            rel = str(d.result.path.relative_to(parent))
            results.append(d.result)
            stopped = d.summary.get("stopped", "completed")
            verdicts = [v for v in d.verdicts if v.status != "SKIP"]
            for arm, s in d.summary["arms"].items():
                rows.append(sweep.row(p, axes, arm, s, rel, [v.to_dict() for v in verdicts if v.arm == arm],
                                      stopped))
            done.append(sweep.point_doc(p, axes, rel, stopped, [v.to_dict() for v in d.verdicts]))
            bad = [v for v in verdicts if v.failed]
            if bad:
                failed.append((p, bad))

        code = EXIT_INTERRUPTED if interrupted else EXIT_THRESHOLD if failed else EXIT_OK
        # an interrupted point's figures are partial: listed, but no crossover rests on them
        found = sweep.crossovers([r for r in rows if r["stopped"] != "interrupted"], axes)
        doc = _write_sweep(parent, axes, rows, done, found, wall_s=time.monotonic() - wall0, total=len(runs),
                           interrupted=interrupted, cut_short=cut_short, exit_code=code)
        if not interrupted:  # charts take seconds; after Ctrl-C the numbers are what is wanted
            warnings += _charts(rows, axes, parent, stop)
    return SweepResult(parent, doc, results, axes, found, failed, warnings)


def _fresh_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        p = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            n += 1


def _write_sweep(parent: Path, axes: Sequence[Any], rows: list[dict[str, Any]], points: list[dict[str, Any]],
                 found: Sequence[Any], *, wall_s: float, total: int, interrupted: bool, cut_short: Sequence[str],
                 exit_code: int) -> dict[str, Any]:
    """Write sweep.json (and sweep.csv when a point finished); sweep.json's dict as written."""
    doc = {
        "loadgen_version": __version__, "clock": "virtual", "complete": not interrupted and len(points) == total,
        "interrupted": interrupted, "exit_code": exit_code,
        "thresholds_passed": not any(p["thresholds_passed"] is False for p in points),
        "points_total": total, "points_done": len(points),
        "wall_s": round(wall_s, 3),
        "axes": [{"key": a.key, "values": list(a.values)} for a in axes],
        "rows": rows, "points": points, "crossovers": [c.to_dict() for c in found],
    }
    if cut_short:  # their folders may hold partial files; not in rows
        doc["interrupted_point"] = cut_short[0]
        doc["interrupted_points"] = list(cut_short)  # several when points ran side by side
    text = json.dumps(doc, indent=2) + "\n"
    (parent / "sweep.json").write_text(text)
    if rows:
        with open(parent / "sweep.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return json.loads(text)


def table(rows: Sequence[dict[str, Any]], axes: Sequence[Any]) -> str:
    """The sweep table; a `thresholds` column (pass / FAIL / -) when any point had thresholds."""
    keys = [a.key for a in axes]
    judged = any(r["thresholds"] != "-" for r in rows)
    head = keys + ["arm", "$/1000", "warm", "throttle", "ttft p50", "ttft p99", "sent"] + (["thresholds"] if judged else [])
    body = []
    for r in rows:
        body.append([str(r[k]) for k in keys] + [
            r["arm"], _num(r["cost_per_1000"], "${:.4f}"), _num(r["warm_ratio"], "{:.1%}"),
            f"{r['throttle_pct']:.2f}%", _num(r["ttft_p50_ms"], "{:.0f} ms"), _num(r["ttft_p99_ms"], "{:.0f} ms"),
            str(r["sent"])] + ([r["thresholds"]] if judged else []))
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


def _num(x: Any, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)


def _charts(rows: Sequence[dict[str, Any]], axes: Sequence[Any], parent: Path, stop: StopFlag) -> list[str]:
    """A cost-per-1000 chart per axis; a chart that fails is a warning (returned), not a lost
    sweep. Ctrl-C here skips the charts left: sweep.json is complete and its verdict stands."""
    warnings = []
    for a in axes:
        if stop.set:
            notice("interrupt: the remaining sweep charts are skipped (sweep.json is complete)")
            break
        try:
            sweep_chart(rows, a.key, str(parent / f"sweep-{safe_name(a.short)}.png"))
        except Exception as e:  # noqa: BLE001 - matplotlib errors are many; the numbers are already written
            warnings.append(f"no chart for {a.key}: {type(e).__name__}: {e}")
    return warnings
