"""`loadgen validate SCENARIO`: parse, check and describe a scenario; sends nothing
(with --target aws, only free CountTokens calls)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from loadgen.api.plan import plan
from loadgen.api.plan_text import render
from loadgen.api.documents import plan_document
from loadgen.api.setup import apply_sets, endpoint_problem, load_scenario
from loadgen.commands.machine import emit_json
from loadgen.engine import prefix_sizing
from loadgen.engine import schedule as schedule_of
from loadgen.engine.clock import RealClock
from loadgen.engine.transport import BedrockTransport, TargetError
from loadgen.scenario import Scenario, ScenarioError
from loadgen.scenario.batch import aws_problem as batch_aws_problem


def cmd_validate(args: argparse.Namespace) -> int:
    """`loadgen validate SCENARIO`: 0 and a plan on stdout, or 2 and every problem on stderr."""
    try:
        sc = load_scenario(args.scenario)
        if getattr(args, "set", None):
            sc = apply_sets(sc, args.set)
    except ScenarioError as e:
        for line in e.problems:
            print(line, file=sys.stderr)
        n = len(e.problems)
        print(f"{args.scenario}: {n} problem{'s' if n != 1 else ''}; nothing was sent", file=sys.stderr)
        return 2
    except ValueError as e:  # a --set flag or value; the message names it
        print(f"loadgen validate: {e}", file=sys.stderr)
        return 2
    json_mode = getattr(args, "format", "text") == "json"
    problem = schedule_of.size_problem(sc, allow_huge=getattr(args, "allow_huge", False))
    if problem:
        print(problem, file=sys.stderr)
        print(f"{args.scenario}: 1 problem; nothing was sent", file=sys.stderr)
        return 2
    for w in sc.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if getattr(args, "target", None) == "aws":  # the plan of the run `run --target aws` would send
        sc = dataclasses.replace(sc, target=dataclasses.replace(sc.target, kind="aws"))
        problem = batch_aws_problem(sc.arms, sc.target)
        if problem:
            print(f"--target aws: {problem}", file=sys.stderr)
            return 2
    try:
        the_plan = plan(sc)
        text = render(the_plan)
    except ValueError as e:  # a pricing or arrival problem the parser did not foresee
        print(f"{args.scenario}: {e}", file=sys.stderr)
        return 2
    if json_mode:
        sizes = None
        if getattr(args, "target", None) == "aws":
            sizes = _prefix_counts(sc, getattr(args, "endpoint_url", None) or sc.target.endpoint_url)
            if isinstance(sizes, int):
                return sizes
        emit_json(plan_document(the_plan, sizes))
        return 0
    print(text)
    if getattr(args, "target", None) == "aws":
        # only on request: validate of a file whose target is aws still sends nothing
        return _print_prefix_counts(sc, getattr(args, "endpoint_url", None) or sc.target.endpoint_url)
    return 0


def _print_prefix_counts(sc: Scenario, endpoint_url: str | None) -> int:
    sizes = _prefix_counts(sc, endpoint_url)
    if isinstance(sizes, int):
        return sizes
    print(f"Prefix sizes (CountTokens in {sc.target.region}"
          + (f" via {endpoint_url}" if endpoint_url else "") + "):")
    print("\n".join(prefix_sizing.describe(sizes)))
    return 0


def _prefix_counts(sc: Scenario, endpoint_url: str | None) -> dict | int:
    """`validate --target aws`: each arm's prefix as Bedrock's CountTokens counts it (free
    calls; the run itself salts each prefix with its results directory name, a few tokens
    more or less, and measures again)."""
    if endpoint_url and (problem := endpoint_problem(endpoint_url)):
        print(f"--endpoint-url: {problem}", file=sys.stderr)
        return 2

    async def go() -> dict:
        async with BedrockTransport.open(RealClock(), region=sc.target.region, endpoint_url=endpoint_url,
                                         max_connections=1, dummy_credentials=False) as t:
            return await prefix_sizing.measure(t.client, sc)

    try:
        sizes = asyncio.run(go())
    except TargetError as e:
        print(f"{sc.path}: CountTokens: {e}", file=sys.stderr)
        return 2
    return sizes
