"""`loadgen simulate SCENARIO [--sweep K=V1,V2 ... | --find-max-rate] [--workers N | --cluster ray]`:
flags -> loadgen.api.simulate (or its sweep / find-max-rate) -> tables on stdout."""

from __future__ import annotations

import argparse
import contextlib
import sys

from loadgen.api import maxrate
from loadgen.api.fanout import SERIAL, Placement
from loadgen.api.ray_cluster import ClusterError, RayMissing
from loadgen.api.setup import InputError, Overrides, load_scenario
from loadgen.api.simulate import simulate_prepared, speed_line
from loadgen.api.documents import maxrate_document, sweep_document
from loadgen.api.sweep import run_sweep, table
from loadgen.commands.machine import emit_json, printer
from loadgen.commands.run import check_outputs, err, finish_junit, output_flags, prepared, print_run
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_TARGET
from loadgen.scenario import ScenarioError
from loadgen.scenario.sweep import SweepError, parse_axes
from loadgen.scenario.thresholds import format_results


def _overrides(args: argparse.Namespace) -> Overrides:
    # simulate always calls the built-in emulator's model, whatever [target] says
    return Overrides(target="emulator", duration=args.duration, arms=tuple(args.arm or ()),
                     max_requests=args.max_requests, allow_huge=args.allow_huge, sets=tuple(args.set))


def _placement(args: argparse.Namespace) -> Placement:
    if args.cluster is None and args.workers is None:
        return SERIAL
    # on Ray, --workers caps the tasks in flight; unset, the cluster's CPUs do
    return Placement(args.workers if args.workers is not None or args.cluster else 1, args.cluster)


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.find_max_rate and args.sweep:
        err("loadgen simulate: --find-max-rate and --sweep do not combine; run them separately")
        return EXIT_BAD_INPUT
    bad = check_outputs(args)
    if bad is not None:
        return bad
    flags = output_flags(args, "simulate")
    if flags is None:
        return EXIT_BAD_INPUT
    if flags.cloudwatch:
        err("loadgen simulate: --output cloudwatch: simulate runs in virtual time, so its metrics have no real "
            "time to be stamped with; send them from `loadgen run` (the warp clock takes minutes too)")
        return EXIT_BAD_INPUT
    if (args.sweep or args.find_max_rate) and flags.jsonl is not None:
        err("loadgen simulate: --output jsonl streams one run; it does not combine with --sweep or --find-max-rate")
        return EXIT_BAD_INPUT
    try:
        if args.sweep:
            return _sweep(args)
        if args.find_max_rate:
            return _find_max_rate(args)
    except RayMissing as e:
        err(f"loadgen simulate: {e}")
        return EXIT_BAD_INPUT
    except ClusterError as e:
        err(f"loadgen simulate: {e}")
        return EXIT_TARGET
    if _placement(args).parallel:
        err("note: --workers and --cluster spread --sweep points and --find-max-rate trials; one simulation "
            "is one emulator model and runs in this process")
    ready = prepared(args.scenario, _overrides(args), "simulate", builtin_emulator=True)
    if isinstance(ready, int):
        return ready
    if ready.scenario.outputs.cloudwatch is not None:
        err("warning: [outputs.cloudwatch] is not sent by simulate (virtual time has no real time to stamp "
            "metrics with); `loadgen run` sends it")
    to_stdout = flags.jsonl != "-"  # jsonl=-: stdout holds the interval lines only
    tell = printer(args.format == "json" or not to_stdout)
    try:
        res = simulate_prepared(ready, out=args.out, max_requests=args.max_requests,
                                progress=None if args.quiet else tell, outputs=flags, results_dir=args.results_dir)
    except InputError as e:  # --out cannot hold a results directory
        err(str(e))
        return EXIT_BAD_INPUT
    with contextlib.redirect_stdout(sys.stdout if to_stdout else sys.stderr):
        print_run(res, args, "simulate")  # --quiet silences the progress lines, not the summary
        if not args.quiet:
            tell(speed_line(res))
    return finish_junit(args, [res], [ready.scenario.name], res.exit_code)


def _sweep(args: argparse.Namespace) -> int:
    """Every point; exit 130 if interrupted, else 1 if any point failed a threshold, else 0."""
    json_mode = args.format == "json"
    say = printer(json_mode)  # progress; with --format json the table is in the document instead
    show = say if not json_mode else (lambda _line: None)
    try:
        parse_axes(args.sweep)  # the flags before the file, as they come first on the line
        sc = load_scenario(args.scenario)  # the base file must be valid on its own: file:line: key
        res = run_sweep(sc, args.sweep, _overrides(args), out=args.out, progress=None if args.quiet else say,
                        placement=_placement(args), results_dir=args.results_dir)
    except (RayMissing, ClusterError):
        raise
    except ScenarioError as e:
        err(str(e))
        return EXIT_BAD_INPUT
    except (SweepError, ValueError, OSError) as e:
        err(f"loadgen simulate: {e}")
        return EXIT_BAD_INPUT
    show(table(res.rows, res.axes) if res.rows else "no point finished")
    if res.crossovers:
        show("crossovers (cost per 1000 requests):")
        for c in res.crossovers:
            show(f"  {c.text()}")
    elif len(res.rows) > 1 and not res.interrupted:
        show("no crossover: the same arm/point is cheapest at every swept value")
    if res.failed:
        show(f"thresholds: {len(res.failed)} of {res.summary['points_done']} points failed a threshold")
        for p, bad in res.failed:
            for line in format_results(bad).splitlines():
                show(f"  {p.label(res.axes)}  {line}")
    for w in res.warnings:
        err(f"warning: {w}")
    show(f"results: {res.path}")
    if res.interrupted:
        err(f"interrupted: partial sweep written ({res.summary['points_done']} of {res.summary['points_total']} "
            "points in sweep.json)")
    if json_mode:
        emit_json(sweep_document(res))
    labels = [f"{sc.name} {p['label']}" for p in res.summary["points"]]
    return finish_junit(args, res.points, labels, res.exit_code)


def _find_max_rate(args: argparse.Namespace) -> int:
    ready = prepared(args.scenario, _overrides(args), "simulate", builtin_emulator=True)
    if isinstance(ready, int):
        return ready
    json_mode = args.format == "json"
    say = printer(json_mode)  # progress; with --format json the table is in the document instead
    show = say if not json_mode else (lambda _line: None)
    sc = ready.scenario
    try:
        maxrate.check_open_loop(sc)
    except InputError as e:
        err(str(e))
        return EXIT_BAD_INPUT
    for line in maxrate.header(sc):  # printed even with --quiet, which silences the trial lines
        say(line)
    try:
        res = maxrate.find_max_rate(sc, ready.pricer, ready.emulator, out=args.out,
                                    progress=None if args.quiet else say, placement=_placement(args),
                                    results_dir=args.results_dir)
    except InputError as e:  # --results-dir taken since it was checked
        err(str(e))
        return EXIT_BAD_INPUT
    show(res.table)
    show(f"results: {res.path}")
    if json_mode:
        emit_json(maxrate_document(res))
    none = maxrate.no_rate(res)
    if none:
        err(f"thresholds: no rate passes for {', '.join(none)} (even the lowest rate tried fails; "
            "see maxrate.json for each trial's verdicts)")
    if res.interrupted:
        err(f"interrupted: partial search written ({len(res.arms)} of {len(sc.arms)} arm(s) in maxrate.json)")
    return finish_junit(args, res.points, [f"{sc.name} {p.path.name}" for p in res.points], res.exit_code)
