"""`loadgen run`: the shell around the runner.

Reads the scenario, picks target and clock, starts the in-process emulator when
needed, opens the results directory, runs, and writes the summary. All I/O and
clock reading for a run happens here or below in the shells (transport, emulator
server, results).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import datetime as dt
import random
import signal
import sys
import time
from typing import Any, Mapping

import anyio

from loadgen import __version__
from loadgen.engine.clock import RealClock, WarpClock
from loadgen.catalog.profiles import region_problem
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.engine.record import Attempt
from loadgen.results.directory import ResultsDir
from loadgen.engine.runner import Limits, Runner
from loadgen.emulator.config import EmulatorConfig
from loadgen.scenario import Scenario, ScenarioError
from loadgen.exit_codes import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TARGET, EXIT_THRESHOLD



def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def apply_overrides(sc: Scenario, args: argparse.Namespace) -> Scenario:
    """The scenario as the flags amend it (ValueError with a flag name on bad values,
    ScenarioError `file:line: key: message` on a contradiction inside the file)."""
    from loadgen.scenario.units import parse_duration

    target = sc.target
    if args.target:
        target = dataclasses.replace(target, kind=args.target)
    if args.region:
        problem = region_problem(args.region)
        if problem:
            raise ValueError(f"--region: {problem}")
        target = dataclasses.replace(target, region=args.region)
    if args.endpoint_url:
        target = dataclasses.replace(target, endpoint_url=args.endpoint_url)
    if target.endpoint_url:
        problem = endpoint_problem(target.endpoint_url)
        if problem:
            if not args.endpoint_url:
                raise ScenarioError([_in_file(sc, ("target", "endpoint_url"), problem)])
            raise ValueError(f"--endpoint-url: {problem}")
    if args.time_scale is not None:
        if not (args.time_scale > 0 and math.isfinite(args.time_scale)):
            raise ValueError(f"--time-scale: expected a number > 0, got {args.time_scale}")
        target = dataclasses.replace(target, time_scale=args.time_scale)
    if target.kind == "aws" and args.time_scale not in (None, 1, 1.0):
        raise ValueError("--time-scale: runs against AWS always use the real clock (scale 1)")
    if target.endpoint_url and target.time_scale != 1.0:
        # The warp clock only works where loadgen paces the emulator on it (see real_clock_reason).
        why = (f"a run against {target.endpoint_url} uses the real clock: loadgen does not drive that "
               "endpoint's clock, so a warped client would see TTLs that never expire, load sent "
               f"{target.time_scale:g}x too fast and timeouts {target.time_scale:g}x too short")
        if args.time_scale is not None:
            raise ValueError(f"--time-scale: {why} (drop --time-scale; without an endpoint URL the "
                             "built-in emulator runs warped)")
        if not args.endpoint_url:  # both in the file; a scale in the file with the flag is not applied
            raise ScenarioError([_in_file(sc, ("target", "time_scale"), why + " (remove time_scale or endpoint_url)")])
    sc = dataclasses.replace(sc, target=target)
    if args.duration:
        try:
            sc = dataclasses.replace(sc, duration=parse_duration(args.duration))
        except ValueError as e:
            raise ValueError(f"--duration: {e}") from None
    if args.arm:
        names = [a.name for a in sc.arms]
        unknown = [n for n in args.arm if n not in names]
        if unknown:
            raise ValueError(f"--arm: no arm named {', '.join(unknown)} (arms: {', '.join(names)})")
        sc = dataclasses.replace(sc, arms=tuple(a for a in sc.arms if a.name in args.arm))
    if args.max_requests is not None and args.max_requests < 1:
        raise ValueError("--max-requests: expected a positive integer")
    if args.max_cost_usd is not None and not args.max_cost_usd > 0:
        raise ValueError("--max-cost-usd: expected a positive amount in USD")
    from loadgen.engine.schedule import size_problem

    problem = size_problem(sc, allow_huge=getattr(args, "allow_huge", False))
    if problem:
        raise ValueError(problem)
    return sc


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be a bedrock-runtime endpoint (None if it can): botocore's own
    test for endpoint URLs, with an http(s) scheme and a valid port."""
    from urllib.parse import urlsplit

    from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

    shape = 'expected an http:// or https:// URL such as "http://127.0.0.1:8787"'
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError when out of range
    except ValueError as e:
        return f"{shape}, got {url!r} ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shape}, got {url!r}"
    if not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):
        return f"{shape}, got {url!r} (not a valid host name)"
    return None


def _in_file(sc: Scenario, key: tuple[str, ...], message: str) -> str:
    """`file:line: key: message` for a key of the scenario file."""
    from loadgen.scenario.toml_lines import key_lines, line_of

    return f"{sc.path}:{line_of(key_lines(sc.source), key)}: {'.'.join(key)}: {message}"


def real_clock_reason(sc: Scenario) -> str | None:
    """Why a run of `sc` must use the real clock, or None when it may warp.

    A warp clock is only right where loadgen paces the emulator on that same clock (the
    built-in emulator in this process). Any other target (AWS, a separate `loadgen
    emulator`, another endpoint) keeps its own time: TTLs, quota windows and latency
    there pass in real seconds, so the client must count real seconds too.
    """
    if sc.target.kind == "aws":
        return "AWS keeps real time"
    if sc.target.endpoint_url:
        return (f"{sc.target.endpoint_url} keeps its own time (loadgen does not drive its clock)"
                + (f"; the scenario's time_scale {sc.target.time_scale:g} applies to the built-in "
                   "emulator only" if sc.target.time_scale != 1.0 else ""))
    return None


def make_pricer(sc: Scenario):
    """The run's pricer: catalog prices with the scenario's overrides, USD by bucket."""
    from loadgen.catalog import pricing
    return pricing.pricer(pricing.table_for(sc.pricing))


def _confirm_aws(sc: Scenario, args: argparse.Namespace) -> bool:
    from loadgen.api.plan import plan, render_plan

    print(render_plan(plan(sc)), flush=True)
    print(f"Target: real Amazon Bedrock in {sc.target.region}"
          + (f" via {sc.target.endpoint_url}" if sc.target.endpoint_url else "")
          + (f"; dispatch stops before the bill could pass ${args.max_cost_usd:.2f}" if args.max_cost_usd else
             "; no --max-cost-usd set"), flush=True)
    if args.yes:
        return True
    if not sys.stdin.isatty():
        _err("refusing to send to AWS without confirmation: pass --yes (and consider --max-cost-usd)")
        return False
    answer = input("Send this traffic to AWS and pay for it? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def prepare(args: argparse.Namespace, command: str = "run") -> tuple[Scenario, Any, Any] | int:
    """Load and check the scenario with its flags: (scenario, pricer, emulator config) or an exit code.

    Everything here happens before a request is sent or a file is written.
    """
    from loadgen.scenario import load

    try:
        sc = apply_overrides(load(args.scenario, check_emulator=EmulatorConfig.from_mapping), args)
    except ScenarioError as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as e:
        _err(f"loadgen {command}: {e}")
        return EXIT_BAD_INPUT
    for w in sc.warnings:
        _err(f"warning: {w}")
    emulator_config = None
    if sc.target.kind == "emulator" and not sc.target.endpoint_url:
        try:
            emulator_config = EmulatorConfig.from_mapping(sc.emulator, source=sc.path)
        except ValueError as e:  # the message already names the file and the key
            _err(str(e))
            return EXIT_BAD_INPUT
    try:
        pricer = make_pricer(sc)
    except Exception as e:  # an unknown model in the price catalog is bad input, not a $0 run
        _err(f"loadgen {command}: {e}")
        return EXIT_BAD_INPUT
    return sc, pricer, emulator_config


def cmd_run(args: argparse.Namespace) -> int:
    prepared = prepare(args, "run")
    if isinstance(prepared, int):
        return prepared
    sc, pricer, emulator_config = prepared
    if sc.target.kind == "aws":
        from loadgen.engine.transport import have_credentials

        if not have_credentials():
            _err("loadgen run: target failed: no AWS credentials found (standard chain: environment, "
                 "~/.aws, SSO, instance role); set them up or run against the emulator (the default target)")
            return EXIT_TARGET
        if not _confirm_aws(sc, args):
            return EXIT_BAD_INPUT
    out = open_results(args.out, sc)
    if out is None:
        return EXIT_BAD_INPUT
    try:
        return anyio.run(_run_async, sc, args, out, pricer, emulator_config)
    finally:
        out.close()


def open_results(parent: str, sc: Scenario) -> ResultsDir | None:
    """A new results directory holding the scenario, or None (reported) if it cannot be made."""
    try:
        out = ResultsDir.create(parent, sc.name, dt.datetime.now(dt.timezone.utc))
    except OSError as e:
        _err(f"--out {parent}: cannot create a results directory there: {e.strerror or e}")
        return None
    out.write_scenario(sc.source)
    return out


def new_metrics(sc: Scenario) -> Metrics:
    return Metrics([ArmInfo.from_arm(a) for a in sc.arms])


class RunState:
    """What one run produced so far: the runner, its metrics, its clock and timings."""

    def __init__(self, sc: Scenario, clock: Any, out: ResultsDir) -> None:
        self.sc, self.clock, self.out = sc, clock, out
        self.metrics = new_metrics(sc)
        self.runner: Runner | None = None
        self.wall0 = time.monotonic()
        self.wall_start = time.time()
        self.summary: dict[str, Any] | None = None  # summary.json's dict, once finish() wrote it
        self.verdicts: list[Any] = []  # thresholds.Result per threshold and arm, once finish() checked them
        if out is not None:  # before any request: a killed run keeps its clock and flags (rebuild reads them)
            facts = run_facts(sc, clock, self.wall0, None)
            out.write_run_facts({k: v for k, v in facts.items() if k not in ("wall_s", "scenario_s", "stopped")})

    def sink(self, a: Attempt, costs: Mapping[str, float]) -> None:
        self.out.append(a)
        self.metrics.record(a, buckets=costs)


async def drive(state: RunState, transport: Any, pricer: Any, args: argparse.Namespace, *,
                salt: str = "", signals: bool = True, prefix_sizes: Any = None) -> None:
    """Run the scenario through `transport` on `state.clock`, with progress and Ctrl-C handling."""
    from loadgen.api.progress import Progress

    sc, clock = state.sc, state.clock
    runner = Runner(sc, transport, clock, sink=state.sink, pricer=pricer,
                    limits=Limits(max_requests=getattr(args, "max_requests", None),
                                  max_cost_usd=getattr(args, "max_cost_usd", None)),
                    salt=salt, prefix_sizes=prefix_sizes)
    state.runner = runner
    progress = Progress(runner, state.metrics, clock, duration=sc.duration, quiet=getattr(args, "quiet", False))
    async with anyio.create_task_group() as tg:
        if signals:
            tg.start_soon(_watch_signals, runner, tg.cancel_scope)
        tg.start_soon(progress.run)
        await runner.run()
        tg.cancel_scope.cancel()
    progress.finish()
    if runner.target_error is not None:  # recorded and dispatch stopped; the caller exits 3
        raise runner.target_error


def finish(state: RunState, *, quiet: bool = False, stop_reason: str | None = None) -> int:
    """Write histograms, summary.json, summary.txt, plots and report.html; the exit code.

    Prints the run table, the threshold lines and the paths unless `quiet` (sweeps and
    find-max-rate print their own tables); warnings go to stderr either way. The
    threshold verdicts (thresholds.Result, one per threshold and arm) are left in
    `state.verdicts`, so a caller judges them without reading stdout.
    """
    from loadgen.report.artifacts import announce, run_artifacts
    from loadgen.report.summary_table import summary_table

    runner = state.runner
    reason = stop_reason or (runner.stop_reason if runner else None)
    summary = state.metrics.summary(run_facts(state.sc, state.clock, state.wall0, reason))
    behind = behind_schedule(summary, state.clock.scale)
    summary["behind_schedule"] = bool(behind)
    state.summary = summary
    state.out.write_histograms(state.metrics, scenario_s=state.clock.now(), wall_start=state.wall_start)
    state.out.write_summary(summary)
    table = summary_table(summary)
    state.out.write_text("summary.txt", table + "\n")
    if not quiet:
        print(table, flush=True)
    for line in behind:
        _err(f"warning: {line}")
    if not quiet:
        print(f"results: {state.out.path}", flush=True)
    verdicts, html, warnings = run_artifacts(state.out.path, summary, state.sc)
    state.verdicts = verdicts
    announce(verdicts, html, warnings, quiet=quiet)
    if reason == "interrupted":
        _err("interrupted: partial results written")
        return EXIT_INTERRUPTED
    return EXIT_THRESHOLD if any(r.failed for r in verdicts) else EXIT_OK


async def _run_async(sc: Scenario, args: argparse.Namespace, out: ResultsDir, pricer, emulator_config) -> int:
    from loadgen.engine.transport import BedrockTransport, TargetError

    aws = sc.target.kind == "aws"
    real_why = real_clock_reason(sc)
    state = RunState(sc, RealClock() if real_why else WarpClock(sc.target.time_scale, hold_between_requests=True),
                     out)
    clock = state.clock
    where = ("AWS Bedrock" + (f" via {sc.target.endpoint_url}" if sc.target.endpoint_url else "") if aws
             else sc.target.endpoint_url if sc.target.endpoint_url else "built-in emulator")
    header = (f"loadgen {__version__}: {sc.name} -> {where} ({sc.target.region}), clock {clock.kind}"
              + (f" ({real_why})" if real_why else
                 f" x{clock.scale:g} (idle gaps are skipped; latency is the emulator's modelled time plus "
                 "the real transport overhead, not scaled)")
              + f", {len(sc.arms)} arm(s): {', '.join(a.name for a in sc.arms)}; results in {out.path}")
    if not args.quiet:
        print(header, flush=True)
    try:
        async with _target(sc, clock, emulator_config) as endpoint:
            async with BedrockTransport.open(
                clock, region=sc.target.region, endpoint_url=endpoint,
                max_connections=sc.target.max_in_flight * len(sc.arms), dummy_credentials=not aws,
            ) as transport:
                sizes = None
                if aws:
                    # size each prefix with Bedrock's own count before the first request
                    from loadgen.engine import prefix_sizing
                    sizes = await prefix_sizing.measure(transport.client, sc, salt=out.path.name)
                    if not args.quiet:
                        print("Prefix sizes (CountTokens):", *prefix_sizing.describe(sizes), sep="\n", flush=True)
                await drive(state, transport, pricer, args, salt=out.path.name if aws else "",
                            prefix_sizes=sizes)
    except TargetError as e:
        _err(f"loadgen run: target failed: {e}")
        finish(state, stop_reason="target-failed")
        return EXIT_TARGET
    return finish(state)  # --quiet silences the progress line, not the summary


LAG_WARN_MS = 10.0  # real milliseconds of p99 schedule lag before a run is called "behind schedule"


def behind_schedule(summary: Mapping[str, Any], scale: float) -> list[str]:
    """One warning per arm whose p99 schedule lag says requests started late.

    Lag is in scenario time, so on a warp clock the bound scales with it. Causes: the
    generator is saturated (one core does ~1,000 calls/s), or `max_in_flight` was
    reached. Latency is measured from the intended start either way, so the wait is in
    the figures, not hidden; this says where it came from.
    """
    bound = LAG_WARN_MS * scale
    out = []
    for name, arm in summary.get("arms", {}).items():
        p99 = (arm.get("latency_ms", {}).get("schedule_lag") or {}).get("p99")
        if p99 is not None and p99 > bound:
            out.append(f"{name}: p99 schedule lag {p99:.0f} ms (bound {bound:.0f} ms): requests started late; "
                       "the generator was saturated or max_in_flight was reached. Latencies include the wait.")
    return out


def run_facts(sc: Scenario, clock: Any, wall0: float, stop_reason: str | None) -> dict[str, Any]:
    return {
        "loadgen_version": __version__, "scenario": sc.name, "target": sc.target.kind,
        "clock": clock.kind, "time_scale": clock.scale, "seed": sc.seed,
        "wall_s": round(time.monotonic() - wall0, 3), "scenario_s": round(clock.now(), 3),
        "duration_s": sc.duration, "region": sc.target.region,
        "stopped": stop_reason or "completed",
    }


class _target:
    """The endpoint to call: the in-process emulator on 127.0.0.1, or the given URL, or AWS (None)."""

    def __init__(self, sc: Scenario, clock: Any, emulator_config: Any) -> None:
        self.sc, self.clock, self.cfg = sc, clock, emulator_config
        self._cm: Any = None

    async def __aenter__(self) -> str | None:
        if self.cfg is None:
            return self.sc.target.endpoint_url
        from loadgen.emulator.model import EmulatorModel
        from loadgen.emulator.server import serve
        from loadgen.engine.transport import TargetError

        model = EmulatorModel(self.cfg, clock=self.clock, rng=random.Random(f"{self.sc.seed}:emulator"),
                              region=self.sc.target.region)
        self._cm = serve(model, self.clock, host="127.0.0.1", port=0)
        try:
            return await self._cm.__aenter__()
        except OSError as e:
            raise TargetError(f"the emulator could not start: {e}") from e

    async def __aexit__(self, *exc: Any) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)


async def _watch_signals(runner: Runner, scope: anyio.CancelScope) -> None:
    """First Ctrl-C: stop dispatch and give in-flight requests a grace period; then abort.

    Runs in the task group around the runner, which is cancelled as soon as the
    runner returns, so the grace timer never holds a finished run open.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            _err(f"\ninterrupt: stopping dispatch; waiting up to {runner.limits.grace_s:g} s "
                 "for in-flight requests (Ctrl-C again to abort)")
            runner.stop("interrupted")
            with anyio.move_on_after(runner.limits.grace_s):
                async for _ in signals:
                    break
            runner.abort()
            return
