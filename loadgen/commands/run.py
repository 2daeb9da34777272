"""`loadgen run SCENARIO`: flags -> loadgen.api.run -> the summary on stdout.

Also what `simulate` shares with it: reading the scenario with its flags
(`prepared`) and printing a finished run (`print_run`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys

import anyio

from loadgen.api.outputs import OutputFlags, parse_output_flags
from loadgen.api.plan import plan
from loadgen.api.plan_text import render
from loadgen.api.result import RunResult
from loadgen.api.run import run_prepared
from loadgen.api.setup import InputError, Overrides, Prepared, apply_overrides, check_credentials, load_scenario, prepare
from loadgen.engine.transport import TargetError
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_TARGET
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


def print_run(res: RunResult) -> None:
    """The end of a run or simulation: the summary table, where the files are, the thresholds."""
    print(summary_table(res.summary), flush=True)
    for line in output_lines(res.summary.get("outputs") or {}):
        print(line, flush=True)
    for line in res.behind:
        err(f"warning: {line}")
    print(f"results: {res.path}", flush=True)
    announce(res.verdicts, res.report, res.warnings)
    if res.interrupted:
        err("interrupted: partial results written")


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
    ready = prepared(args.scenario, Overrides(
        target=args.target, region=args.region, endpoint_url=args.endpoint_url, time_scale=args.time_scale,
        duration=args.duration, arms=tuple(args.arm or ()), max_requests=args.max_requests,
        max_cost_usd=args.max_cost_usd, allow_huge=args.allow_huge), "run")
    if isinstance(ready, int):
        return ready
    flags = output_flags(args, "run")
    if flags is None:
        return EXIT_BAD_INPUT
    sc = ready.scenario
    if sc.target.kind == "aws":
        try:
            check_credentials(sc)
        except TargetError as e:
            err(f"loadgen run: target failed: {e}")
            return EXIT_TARGET
        if not _confirm_aws(sc, args):
            return EXIT_BAD_INPUT
    to_stdout = flags.jsonl != "-"  # jsonl=-: stdout holds the interval lines only
    go = functools.partial(run_prepared, ready, out=args.out, max_requests=args.max_requests, max_cost_usd=args.max_cost_usd,
                           progress=None if args.quiet else say if to_stdout else err,
                           status=None if args.quiet else sys.stderr, cleanup=args.cleanup, outputs=flags)
    try:
        res = anyio.run(go)
    except InputError as e:  # --out cannot hold a results directory
        err(str(e))
        return EXIT_BAD_INPUT
    if res.target_error is not None:
        err(f"loadgen run: target failed: {res.target_error}")
    with contextlib.redirect_stdout(sys.stdout if to_stdout else sys.stderr):
        print_run(res)  # --quiet silences the progress line, not the summary
        for line in res.batch_leftovers:
            say(line)
    return res.exit_code


def output_flags(args: argparse.Namespace, command: str) -> OutputFlags | None:
    """`--output` as OutputFlags, or None after printing why it is wrong."""
    try:
        return parse_output_flags(getattr(args, "output", None) or [])
    except ValueError as e:
        err(f"loadgen {command}: {e}")
        return None


def _confirm_aws(sc: Scenario, args: argparse.Namespace) -> bool:
    print(render(plan(sc)), flush=True)
    print(f"Target: real Amazon Bedrock in {sc.target.region}"
          + (f" via {sc.target.endpoint_url}" if sc.target.endpoint_url else "")
          + (f"; dispatch stops before the bill could pass ${args.max_cost_usd:.2f}" if args.max_cost_usd else
             "; no --max-cost-usd set"), flush=True)
    if args.yes:
        return True
    if not sys.stdin.isatty():
        err("refusing to send to AWS without confirmation: pass --yes (and consider --max-cost-usd)")
        return False
    answer = input("Send this traffic to AWS and pay for it? [y/N] ").strip().lower()
    return answer in ("y", "yes")
