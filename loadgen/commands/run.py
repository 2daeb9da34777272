"""`loadgen run SCENARIO`: flags -> loadgen.api.run -> the summary on stdout.

Also what `simulate` shares with it: reading the scenario with its flags
(`prepared`) and printing a finished run (`print_run`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys

from loadgen.api.documents import run_document
from loadgen.api.outputs import OutputFlags, check_cloudwatch_credentials, parse_output_flags
from loadgen.api.plan import plan
from loadgen.api.plan_text import render
from loadgen.api.ray_cluster import ClusterError, RayMissing
from loadgen.api.ray_executor import RayExecutor, cluster_problem
from loadgen.api.result import RunResult
from loadgen.api.run import run_prepared
from loadgen.api.setup import InputError, Overrides, Prepared, apply_overrides, check_credentials, load_scenario, prepare
from loadgen.api.workers import workers_problem
from loadgen.commands.machine import (emit_json, junit_problem, printer, results_dir_problem, status_stream,
                                      write_junit_or_say)
from loadgen.engine import event_loop
from loadgen.engine.transport import TargetError
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_OK, EXIT_TARGET
from loadgen.report.artifacts import announce
from loadgen.report.summary_table import summary_table
from loadgen.scenario import Scenario, ScenarioError


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def say(line: str) -> None:
    print(line, flush=True)


def prepared(path: str, ov: Overrides, command: str, *, builtin_emulator: bool | None = None) -> Prepared | int:
    """The scenario at `path` amended by the flags and checked for a run, or the exit code
    after printing why not (its warnings go to stderr either way)."""
    try:
        sc = apply_overrides(load_scenario(path), ov)
    except ScenarioError as e:
        err(str(e))
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as e:
        err(f"loadgen {command}: {e}")
        return EXIT_BAD_INPUT
    for w in sc.warnings:
        err(f"warning: {w}")
    try:
        return prepare(sc, builtin_emulator=builtin_emulator)
    except InputError as e:  # the message already names the file and the key
        err(str(e))
        return EXIT_BAD_INPUT
    except ValueError as e:
        err(f"loadgen {command}: {e}")
        return EXIT_BAD_INPUT


def print_run(res: RunResult, args: argparse.Namespace | None = None, command: str = "run") -> None:
    """The end of a run or simulation: the summary table, where the files are, the thresholds
    (with `--format json`: the one JSON document instead, and only warnings on stderr)."""
    json_mode = args is not None and getattr(args, "format", "text") == "json"
    if not json_mode:
        print(summary_table(res.summary), flush=True)
    for line in output_lines(res.summary.get("outputs") or {}):
        print(line, file=sys.stderr if json_mode else sys.stdout, flush=True)
    for line in res.behind:
        err(f"warning: {line}")
    if not json_mode:
        print(f"results: {res.path}", flush=True)
    announce(res.verdicts, res.report, res.warnings, quiet=json_mode)
    if res.interrupted:
        err("interrupted: partial results written")
    if json_mode:
        emit_json(run_document(res, command))


def check_outputs(args: argparse.Namespace) -> int | None:
    """--results-dir and --junit checked before anything is read, sent or written (and
    --format json against an interval stream on stdout): the exit code after saying why,
    or None when they can be used."""
    problem = results_dir_problem(getattr(args, "results_dir", None)) or junit_problem(getattr(args, "junit", None))
    if not problem and getattr(args, "format", "text") == "json" and "jsonl=-" in (getattr(args, "output", None) or []):
        problem = ("--format json and --output jsonl=-: both would write to stdout; send the interval "
                   "stream to a file (--output jsonl=PATH)")
    if problem:
        err(problem)
        return EXIT_BAD_INPUT
    return None


def finish_junit(args: argparse.Namespace, results: list[RunResult], labels: list[str], code: int) -> int:
    """Write --junit for `results` (one suite per run, named by `labels`); the exit code,
    2 instead of 0 when the file could not be written (CI would miss its report)."""
    suites = [(label, r.verdicts, float(r.summary.get("wall_s") or 0.0)) for label, r in zip(labels, results)]
    if write_junit_or_say(getattr(args, "junit", None), suites, err) or code != EXIT_OK:
        return code
    return EXIT_BAD_INPUT


def output_lines(outputs: dict) -> list[str]:
    """What the run's outputs did: the interval stream, CloudWatch's datums and any loss."""
    lines = []
    j = outputs.get("jsonl")
    if j:
        lines.append(f"intervals: {j['lines']} lines ({outputs['interval_s']:g} s each, per arm) to {j['path']}")
    cw = outputs.get("cloudwatch")
    if cw:
        lost = cw["dropped"] + cw["failed"]
        lines.append(f"cloudwatch: {cw['sent']} datums sent to namespace {cw['namespace']} in {cw['calls']} "
                     f"PutMetricData calls; " + (f"{lost} lost ({cw['dropped']} dropped, {cw['failed']} failed"
                                                 + (f"; last error: {cw['last_error']}" if cw.get("last_error") else "")
                                                 + ")" if lost else "none lost"))
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    bad = check_outputs(args)
    if bad is not None:
        return bad
    ov = Overrides(
        target=args.target, region=args.region, endpoint_url=args.endpoint_url, time_scale=args.time_scale,
        duration=args.duration, arms=tuple(args.arm or ()), max_requests=args.max_requests,
        max_cost_usd=args.max_cost_usd, allow_huge=args.allow_huge, sets=tuple(args.set))
    ready = prepared(args.scenario, ov, "run")
    if isinstance(ready, int):
        return ready
    flags = output_flags(args, "run")
    if flags is None:
        return EXIT_BAD_INPUT
    sc = ready.scenario
    cluster = getattr(args, "cluster", None)
    if cluster is not None:
        problem = (cluster_problem(cluster, ready.emulator is not None)
                   or workers_problem(sc, args.workers or 1, "--cluster"))
        if problem:
            err(f"loadgen run: {problem}")
            return EXIT_BAD_INPUT
    try:
        check_cloudwatch_credentials(sc, flags)
    except TargetError as e:
        err(f"loadgen run: {e}")
        return EXIT_TARGET
    if sc.target.kind == "aws":
        try:
            check_credentials(sc)
        except TargetError as e:
            err(f"loadgen run: target failed: {e}")
            return EXIT_TARGET
        if not _confirm_aws(sc, args):
            return EXIT_BAD_INPUT
    executor = None
    if cluster is not None:
        try:
            executor = RayExecutor.connect(cluster, here=ready.emulator is not None)
        except RayMissing as e:
            err(f"loadgen run: {e}")
            return EXIT_BAD_INPUT
        except ClusterError as e:
            err(f"loadgen run: target failed: {e}")
            return EXIT_TARGET
        if cluster != "ray" and _loopback(sc.target.endpoint_url):
            err(f"warning: --cluster {cluster}: {sc.target.endpoint_url} is each Ray node's own machine, not this one")
    workers = args.workers or (executor.cpus if executor is not None else 1)
    to_stdout = flags.jsonl != "-"  # jsonl=-: stdout holds the interval lines only
    tell = printer(args.format == "json" or not to_stdout)  # human lines: stderr when stdout is for machines
    go = functools.partial(run_prepared, ready, out=args.out, max_requests=args.max_requests, max_cost_usd=args.max_cost_usd,
                           progress=None if args.quiet else tell,
                           status=None if args.quiet else status_stream(sys.stderr, os.environ),
                           cleanup=args.cleanup, outputs=flags, results_dir=args.results_dir,
                           workers=workers, overrides=ov, executor=executor)
    try:
        res = event_loop.run(go)
    except InputError as e:  # --out cannot hold a results directory
        err(str(e))
        return EXIT_BAD_INPUT
    finally:
        if executor is not None:
            executor.close()
    if res.target_error is not None:
        err(f"loadgen run: target failed: {res.target_error}")
    with contextlib.redirect_stdout(sys.stdout if to_stdout else sys.stderr):
        print_run(res, args, "run")  # --quiet silences the progress line, not the summary
        for line in res.batch_leftovers:
            tell(line)
    return finish_junit(args, [res], [sc.name], res.exit_code)


def _loopback(url: str | None) -> bool:
    host = (url or "").split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def output_flags(args: argparse.Namespace, command: str) -> OutputFlags | None:
    """`--output` as OutputFlags, or None after printing why it is wrong."""
    try:
        return parse_output_flags(getattr(args, "output", None) or [])
    except ValueError as e:
        err(f"loadgen {command}: {e}")
        return None


def _confirm_aws(sc: Scenario, args: argparse.Namespace) -> bool:
    machine = args.format == "json" or "jsonl=-" in (getattr(args, "output", None) or [])
    tell = printer(machine)  # stdout holds only the JSON document or the interval stream
    tell(render(plan(sc)))
    tell(f"Target: real Amazon Bedrock in {sc.target.region}"
         + (f" via {sc.target.endpoint_url}" if sc.target.endpoint_url else "")
         + (f"; dispatch stops before the bill could pass ${args.max_cost_usd:.2f}" if args.max_cost_usd else
            "; no --max-cost-usd set"))
    if args.yes:
        return True
    if not sys.stdin.isatty():
        err("refusing to send to AWS without confirmation: pass --yes (and consider --max-cost-usd)")
        return False
    question = "Send this traffic to AWS and pay for it? [y/N] "
    if machine:
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = sys.stdin.readline()
    else:
        answer = input(question)
    return answer.strip().lower() in ("y", "yes")
