"""`loadgen simulate`: a scenario in virtual time, what-if sweeps, find-max-rate.

The same runner as `loadgen run` (run_command.prepare / RunState / drive / finish),
on a VirtualClock, with the emulator's model called in-process (InProcessTransport):
no sockets, and time moves only when every task waits, so hours of traffic take
seconds. Results use the same directory format as `run`; `clock` is "virtual".

  loadgen simulate SCENARIO                       one results directory
  loadgen simulate SCENARIO --sweep K=V1,V2 ...   one per point under <name>-sweep-<UTC>/,
                                                  plus sweep.json, sweep.csv, crossovers
  loadgen simulate SCENARIO --find-max-rate       highest arrival rate within the
                                                  thresholds, per arm (loadgen.api.maxrate)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import anyio

from loadgen import __version__
from loadgen.engine.clock import VirtualClock
from loadgen.results.directory import ResultsDir, safe_name
from loadgen.api.run import (EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_THRESHOLD, RunState,
                                 apply_overrides, drive, finish, make_pricer, open_results, prepare)
from loadgen.emulator.config import EmulatorConfig
from loadgen.scenario import Scenario, ScenarioError
from loadgen.scenario.thresholds import format_results

# `loadgen run` flags simulate does not take; apply_overrides reads them all.
_NOT_EXPOSED = ("target", "region", "endpoint_url", "time_scale", "max_cost_usd")


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _defaults(args: argparse.Namespace) -> argparse.Namespace:
    for name in _NOT_EXPOSED + ("duration", "arm", "max_requests"):
        if not hasattr(args, name):
            setattr(args, name, None)
    # simulate always calls the built-in emulator's model, whatever [target] says
    args.target, args.endpoint_url = "emulator", None
    for name, default in (("sweep", None), ("find_max_rate", False), ("out", "results"), ("quiet", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


# --------------------------------------------------------------------------- one simulation

class ProbeState(RunState):
    """A RunState that keeps metrics (and an optional per-attempt hook) but writes no files."""

    def __init__(self, sc: Scenario, clock: Any, on_attempt: Callable[[Any], None] | None = None) -> None:
        super().__init__(sc, clock, out=None)  # type: ignore[arg-type]
        self.on_attempt = on_attempt

    def sink(self, a: Any, costs: Any) -> None:
        self.metrics.record(a, buckets=costs)
        if self.on_attempt is not None:
            self.on_attempt(a)


def simulate(state: RunState, pricer: Any, emulator_config: Any, *, max_requests: int | None = None,
             signals: bool = True) -> RunState:
    """Run `state.sc` to the end on `state.clock` (a fresh VirtualClock) in a new event loop."""
    from loadgen.emulator.model import EmulatorModel
    from loadgen.api.inprocess import InProcessTransport

    sc, clock = state.sc, state.clock
    dargs = SimpleNamespace(quiet=True, max_requests=max_requests, max_cost_usd=None)

    async def main() -> None:
        # the same seeds as `loadgen run`'s in-process emulator
        model = EmulatorModel(emulator_config, clock=clock, rng=random.Random(f"{sc.seed}:emulator"),
                              region=sc.target.region)
        transport = InProcessTransport(model, clock, rng=random.Random(f"{sc.seed}:request-ids"))
        await drive(state, transport, pricer, dargs, signals=signals)

    anyio.run(main, backend_options={"loop_factory": clock.loop_factory})
    return state


class StopFlag:
    """Ctrl-C (or SIGTERM) between the runs of a sweep or find-max-rate: let the run or
    trial in hand finish (its files too), then stop; a second one aborts at once
    (KeyboardInterrupt). Inside a run the runner's own handler takes over (drive), and the
    event loop puts the default handlers back when it closes, hence `install` after each run.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, what: str) -> None:
        self.what, self.set = what, False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        for sig in self.SIGNALS:
            old = signal.signal(sig, self._handle)
            self._old.setdefault(sig, old)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        _err(f"\ninterrupt: finishing {self.what} in hand, then stopping (Ctrl-C again to abort)")

    def __enter__(self) -> "StopFlag":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()


def _emulator_config(sc: Scenario) -> Any:
    return EmulatorConfig.from_mapping(sc.emulator, source=sc.path)


# --------------------------------------------------------------------------- the command

def cmd_simulate(args: argparse.Namespace) -> int:
    args = _defaults(args)
    if args.find_max_rate and args.sweep:
        _err("loadgen simulate: --find-max-rate and --sweep do not combine; run them separately")
        return EXIT_BAD_INPUT
    if args.sweep:
        return _cmd_sweep(args)
    if args.find_max_rate:
        from loadgen.api.maxrate import cmd_find_max_rate

        return cmd_find_max_rate(args)
    prepared = prepare(args, "simulate")
    if isinstance(prepared, int):
        return prepared
    sc, _, emulator_config = prepared
    pricer = make_pricer(sc)
    out = open_results(args.out, sc)
    if out is None:
        return EXIT_BAD_INPUT
    state = RunState(sc, VirtualClock(), out)
    if not args.quiet:
        print(f"loadgen {__version__}: {sc.name} simulated in virtual time (emulator model in-process, "
              f"{sc.target.region}), {len(sc.arms)} arm(s): {', '.join(a.name for a in sc.arms)}; "
              f"results in {out.path}", flush=True)
    try:
        simulate(state, pricer, emulator_config, max_requests=args.max_requests)
    finally:
        out.close()
    wall = time.monotonic() - state.wall0  # the simulation alone, before plots and report.html
    code = finish(state)  # --quiet silences the progress lines, not the summary
    if not args.quiet:
        n = state.metrics.snapshot().total.sent
        print(f"simulated {state.clock.now():,.0f} s of scenario time in {wall:.2f} s wall "
              f"({n} attempts, {n / wall if wall > 0 else 0:,.0f} per wall second)", flush=True)
    return code


# --------------------------------------------------------------------------- sweeps

def _load_raw(path: str) -> tuple[str, dict]:
    from loadgen._toml import toml
    from loadgen.scenario import load

    load(path, check_emulator=EmulatorConfig.from_mapping)  # the base file must be valid on its own: its own errors, file:line: key
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return text, toml.loads(text)


def sweep_scenarios(path: str, flags: Sequence[str], args: argparse.Namespace
                    ) -> tuple[list[Any], list[Any], list[tuple[Any, Scenario, str]]]:
    """(axes, points, [(point, scenario, toml text)]) for every point, all checked before any runs.

    Raises ScenarioError (the base file) or ValueError (a flag or a swept value), whose
    messages name the flag, key and value.
    """
    from loadgen.scenario import sweep
    from loadgen.scenario import loads

    axes = sweep.parse_axes(flags)
    text, raw = _load_raw(path)
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
                                                  *(f"  and {n}" for n in notes),
                                                  f"generated from {path} (comments dropped)"]))
        try:
            sc = apply_overrides(loads(body, path, check_emulator=EmulatorConfig.from_mapping), args)
        except ScenarioError as e:
            # lines refer to the generated text; the key and message are what matter here
            for line in e.problems:
                msg = line.split(": ", 1)[1] if line.startswith(path + ":") else line
                problems.append(f"--sweep {setting}: {msg}")
            continue
        done.append((p, sc, body))
    if problems:
        raise ValueError("\n".join(dict.fromkeys(problems)))
    return axes, pts, done


def _cmd_sweep(args: argparse.Namespace) -> int:
    """Run every point; exit 130 if interrupted (the points done are written), else 1 if any
    point failed a threshold (k6-like: a sweep in CI fails when one of its runs would), else 0."""
    from loadgen.scenario import sweep
    try:
        axes, pts, runs = sweep_scenarios(args.scenario, args.sweep, args)
    except ScenarioError as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as e:
        _err(f"loadgen simulate: {e}")
        return EXIT_BAD_INPUT
    try:
        configs = [(make_pricer(sc), _emulator_config(sc)) for _, sc, _ in runs]
    except ValueError as e:  # PricingError or an [emulator] key the parser let through
        _err(f"loadgen simulate: {e}")
        return EXIT_BAD_INPUT

    name = runs[0][1].name
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    parent = _fresh_dir(Path(args.out) / f"{safe_name(name)}-sweep-{stamp}")
    if not args.quiet:
        print(f"loadgen {__version__}: sweep of {name}, {len(runs)} point(s) "
              f"({' x '.join(f'{a.key} ({len(a.values)})' for a in axes)}), virtual time; results in {parent}",
              flush=True)
    rows: list[dict[str, Any]] = []
    done: list[dict[str, Any]] = []           # sweep.json "points": one per point run, with its verdicts
    failed: list[tuple[Any, list[Any]]] = []  # (point, failed thresholds.Result) for the printout
    interrupted, cut_short = False, None
    wall0 = time.monotonic()
    with StopFlag("the point") as stop:
        for (p, sc, body), (pricer, cfg) in zip(runs, configs):
            path = parent / p.dirname(axes)
            rel = str(path.relative_to(parent))
            t0 = time.monotonic()
            try:
                path.mkdir()
                out = ResultsDir(path)
                out.write_scenario(body)
                state = RunState(sc, VirtualClock(), out)
                try:
                    simulate(state, pricer, cfg, max_requests=args.max_requests)
                finally:
                    out.close()
                    stop.install()
                code = finish(state, quiet=True)  # one table per point would drown the sweep's own
            except KeyboardInterrupt:
                # a second Ctrl-C, or one in the instant the loop hands the handlers back:
                # this point is incomplete; the points before it stand
                interrupted, cut_short = True, rel
                break
            summary = state.summary
            assert summary is not None
            stopped = summary.get("stopped", "completed")
            verdicts = [v for v in state.verdicts if v.status != "SKIP"]
            for arm, s in summary["arms"].items():
                rows.append(sweep.row(p, axes, arm, s, rel, [v.to_dict() for v in verdicts if v.arm == arm],
                                      stopped))
            done.append(sweep.point_doc(p, axes, rel, stopped, [v.to_dict() for v in state.verdicts]))
            bad = [v for v in verdicts if v.failed]
            if bad:
                failed.append((p, bad))
            if not args.quiet:
                n = sum(s["requests"]["sent"] for s in summary["arms"].values())
                verdict = f", thresholds FAIL ({len(bad)} of {len(verdicts)})" if bad else \
                    (", thresholds pass" if verdicts else "")
                print(f"  [{p.index + 1}/{len(runs)}] {p.label(axes)}: {n} attempts{verdict}, "
                      f"{time.monotonic() - t0:.2f} s wall", flush=True)
            if code == EXIT_INTERRUPTED or stop.set:
                interrupted = code == EXIT_INTERRUPTED or len(done) < len(runs)
                break

        code = EXIT_INTERRUPTED if interrupted else EXIT_THRESHOLD if failed else EXIT_OK
        # an interrupted point's figures are partial: listed, but no crossover rests on them
        found = sweep.crossovers([r for r in rows if r["stopped"] != "interrupted"], axes)
        _write_sweep(parent, axes, rows, done, found, wall_s=time.monotonic() - wall0, total=len(runs),
                     interrupted=interrupted, cut_short=cut_short, exit_code=code)
        print(_table(rows, axes) if rows else "no point finished", flush=True)
        if found:
            print("crossovers (cost per 1000 requests):", flush=True)
            for c in found:
                print(f"  {c.text()}", flush=True)
        elif len(rows) > 1 and not interrupted:
            print("no crossover: the same arm/point is cheapest at every swept value", flush=True)
        if failed:
            print(f"thresholds: {len(failed)} of {len(done)} points failed a threshold", flush=True)
            for p, bad in failed:
                for line in format_results(bad).splitlines():
                    print(f"  {p.label(axes)}  {line}", flush=True)
        if not interrupted:  # charts take seconds; after Ctrl-C the numbers are what is wanted
            _chart(rows, axes, parent, stop)
    print(f"results: {parent}", flush=True)
    if interrupted:
        _err(f"interrupted: partial sweep written ({len(done)} of {len(runs)} points in sweep.json)")
    return code


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
                 found: Sequence[Any], *, wall_s: float, total: int, interrupted: bool, cut_short: str | None,
                 exit_code: int) -> None:
    doc = {
        "loadgen_version": __version__, "clock": "virtual", "complete": not interrupted and len(points) == total,
        "interrupted": interrupted, "exit_code": exit_code,
        "thresholds_passed": not any(p["thresholds_passed"] is False for p in points),
        "points_total": total, "points_done": len(points),
        "wall_s": round(wall_s, 3),
        "axes": [{"key": a.key, "values": list(a.values)} for a in axes],
        "rows": rows, "points": points, "crossovers": [c.to_dict() for c in found],
    }
    if cut_short is not None:
        doc["interrupted_point"] = cut_short  # its folder may hold partial files; not in rows
    (parent / "sweep.json").write_text(json.dumps(doc, indent=2) + "\n")
    if rows:
        with open(parent / "sweep.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def _table(rows: Sequence[dict[str, Any]], axes: Sequence[Any]) -> str:
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


def _chart(rows: Sequence[dict[str, Any]], axes: Sequence[Any], parent: Path, stop: StopFlag) -> None:
    """A cost-per-1000 chart per axis; a chart that fails is a warning, not a lost sweep.
    Ctrl-C here skips the charts left: sweep.json is complete and its verdict stands."""
    from loadgen.report.sweep_chart import sweep_chart

    for a in axes:
        if stop.set:
            _err("interrupt: the remaining sweep charts are skipped (sweep.json is complete)")
            return
        try:
            sweep_chart(rows, a.key, str(parent / f"sweep-{safe_name(a.short)}.png"))
        except Exception as e:  # noqa: BLE001 - matplotlib errors are many; the numbers are already written
            _err(f"warning: no chart for {a.key}: {type(e).__name__}: {e}")
