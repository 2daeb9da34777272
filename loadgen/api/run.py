"""`loadgen.run`: a scenario against the built-in emulator, another endpoint or AWS.

Picks the clock (warp for the built-in emulator, real otherwise), starts the in-process
emulator when needed, opens the results directory, runs, and writes the summary. The
`loadgen run` command (loadgen/commands/run.py) asks for confirmation before AWS and
prints; this module prints nothing itself (see `progress` and `status` below).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import anyio

from loadgen import __version__
from loadgen.api.batch_setup import batch_leftovers, has_batch, http_batch, leftover_lines
from loadgen.api.outputs import OutputFlags, check_cloudwatch_credentials, check_flags
from loadgen.api.result import RunResult
from loadgen.api.session import RunState, drive, finish, open_results
from loadgen.api.setup import (InputError, Overrides, Prepared, apply_overrides, as_scenario, check_credentials,
                               prepare, real_clock_reason)
from loadgen.api.workers import run_workers, workers_problem
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve
from loadgen.engine import prefix_sizing
from loadgen.engine.clock import RealClock, WarpClock
from loadgen.engine.runner import Limits
from loadgen.engine.transport import BedrockTransport, TargetError
from loadgen.scenario import Scenario

_log = logging.getLogger(__name__)  # -v: the emulator's address (commands/logs.py)


async def run(scenario: Scenario | str | Path, *, out: str | Path = "results", target: str | None = None,
              region: str | None = None, endpoint_url: str | None = None, time_scale: float | None = None,
              duration: str | None = None, arms: Sequence[str] = (), max_requests: int | None = None,
              max_cost_usd: float | None = None, allow_huge: bool = False,
              progress: Callable[[str], None] | None = None, status: TextIO | None = None,
              signals: bool = True, cleanup: bool = False, outputs: OutputFlags | None = None,
              results_dir: str | Path | None = None, sets: Sequence[str] = (), workers: int = 1,
              executor: Any = None) -> RunResult:
    """Run `scenario` (a Scenario or a path) and write a results directory under `out`
    (or exactly `results_dir`, which must not hold anything).

    The keyword arguments are `loadgen run`'s flags (`target="aws"` sends real traffic
    and is billed: the API asks for no confirmation). `progress` receives the header
    lines as they happen; `status` is where the live status line goes (e.g. sys.stderr);
    `signals`: the first Ctrl-C stops dispatch and the partial results are written
    (main thread only). `cleanup`: remove the S3 objects batch arms wrote to a real
    bucket at the end (else they are listed in the result's `batch_leftovers`).
    `outputs`: `--output` (api/outputs.py: the jsonl interval stream, CloudWatch).
    `workers`: processes sending the schedule (its execution segments, api/workers.py);
    1 runs in this process; more start one process per segment and, for the built-in
    emulator, the emulator in one process of its own. `executor`: how those segments are
    launched (api/executor.py; default local processes).

    Returns the RunResult (its `exit_code` is what `loadgen run` exits with). Raises
    ScenarioError / InputError / ValueError on bad input before anything is sent or
    written, TargetError when AWS credentials are missing (for an AWS target or CloudWatch
    output) or the emulator cannot start.
    A target that fails mid-run is not raised: the result carries it (`target_error`).
    """
    ov = Overrides(target=target, region=region, endpoint_url=endpoint_url, time_scale=time_scale, duration=duration,
                   arms=tuple(arms), max_requests=max_requests, max_cost_usd=max_cost_usd, allow_huge=allow_huge,
                   sets=tuple(sets))
    sc = apply_overrides(as_scenario(scenario), ov)
    ready = prepare(sc)
    check_credentials(sc)
    # the credential chain may block (SSO, credential_process, an instance role): not on the loop
    await anyio.to_thread.run_sync(check_cloudwatch_credentials, sc, outputs)
    return await run_prepared(ready, out=out, max_requests=max_requests, max_cost_usd=max_cost_usd,
                              progress=progress, status=status, signals=signals, cleanup=cleanup, outputs=outputs,
                              results_dir=results_dir, workers=workers, overrides=ov, executor=executor)


async def run_prepared(ready: Prepared, *, out: str | Path = "results", max_requests: int | None = None,
                       max_cost_usd: float | None = None, progress: Callable[[str], None] | None = None,
                       status: TextIO | None = None, signals: bool = True, cleanup: bool = False,
                       outputs: OutputFlags | None = None, results_dir: str | Path | None = None,
                       workers: int = 1, overrides: Overrides | None = None, executor: Any = None) -> RunResult:
    """`run` of a scenario already amended and checked (`setup.prepare`), as `loadgen run`
    calls it after asking before AWS. The limits were checked with the overrides, and the
    credentials an AWS target or CloudWatch output needs (`run` and the command check them).
    `workers` > 1: split over processes (api/workers.py); each re-reads the scenario file's
    text and applies `overrides` (the ones `ready` was made with) as this process did."""
    sc = ready.scenario
    check_flags(outputs)
    where = getattr(executor, "where", None)  # a cluster: split even into one segment
    split = workers > 1 or where is not None
    if split:
        flag = "--cluster" if where else "--workers"
        problem = workers_problem(sc, workers, flag)
        if problem:
            raise InputError(problem)
        cpus = getattr(executor, "cpus", None)
        if where and cpus is not None and workers > cpus:
            # a segment waiting for a CPU would start after the others, its requests all late
            raise InputError(f"--workers {workers}: {where}; every segment needs a CPU of its own for the "
                             f"whole run: at most --workers {cpus}")
        if ready.emulator is not None and getattr(executor, "context", True) is None:
            raise InputError(f"{flag}: these workers cannot reach a built-in emulator on this machine; "
                             "pass --endpoint-url or --target aws")
    results = open_results(str(out), sc, exact=results_dir)
    try:
        if split:
            return await run_workers(ready, results, overrides or Overrides(), workers=workers,
                                     limits=Limits(max_requests=max_requests, max_cost_usd=max_cost_usd),
                                     progress=progress, status=status, signals=signals, executor=executor,
                                     header=header, outputs=outputs)
        return await _run(sc, results, ready.pricer, ready.emulator, Limits(max_requests=max_requests,
                          max_cost_usd=max_cost_usd), progress=progress, status=status, signals=signals,
                          cleanup=cleanup, outputs=outputs)
    finally:
        results.close()


async def _run(sc: Scenario, out: Any, pricer: Any, emulator_config: EmulatorConfig | None, limits: Limits, *,
               progress: Callable[[str], None] | None, status: TextIO | None, signals: bool,
               cleanup: bool = False, outputs: OutputFlags | None = None) -> RunResult:
    aws = sc.target.kind == "aws"
    real_why = real_clock_reason(sc)
    state = RunState(sc, RealClock() if real_why else WarpClock(sc.target.time_scale, hold_between_requests=True),
                     out, outputs)
    clock = state.clock
    if progress is not None:
        progress(header(sc, clock, real_why, out.path))
    target = _target(sc, clock, emulator_config)
    leftovers: tuple[list[str], int, str | None] = ([], 0, None)
    result_uri = ""
    try:
        async with target as endpoint, contextlib.AsyncExitStack() as stack:
            batch = None
            if has_batch(sc):
                # the built-in emulator's S3 is moto's server, with the bucket made for the run;
                # elsewhere the endpoints are AWS's (or AWS_ENDPOINT_URL_S3 / _BEDROCK), the bucket the user's
                batch = await stack.enter_async_context(http_batch(
                    sc, clock, bedrock_url=endpoint, s3_url=target.s3_url, salt=out.path.name,
                    dummy_credentials=not aws, create_bucket=target.s3_url is not None))
            async with BedrockTransport.open(
                clock, region=sc.target.region, endpoint_url=endpoint,
                max_connections=sc.target.max_in_flight * len(sc.arms), dummy_credentials=not aws,
            ) as transport:
                # Everything alive now (imports, botocore's service model, the client) lives
                # as long as the run: frozen, every full collection walks only what the run
                # makes (gen-2 collections cost ~27 us of CPU per request without; ~5 with).
                # Unfrozen after, so a process running many runs (tests, the API) still frees them.
                gc.collect()
                gc.freeze()
                stack.callback(gc.unfreeze)
                sizes = None
                if aws:
                    # size each prefix with Bedrock's own count before the first request
                    sizes = await prefix_sizing.measure(transport.client, sc, salt=out.path.name)
                    if progress is not None:
                        progress("\n".join(["Prefix sizes (CountTokens):", *prefix_sizing.describe(sizes)]))
                await drive(state, transport, pricer, limits=limits, status=status, signals=signals,
                            salt=out.path.name if aws else "", prefix_sizes=sizes, batch=batch)
            if batch is not None and target.s3_url is None:  # a real bucket: what the run left there
                leftovers = await batch_leftovers(batch, cleanup)
                result_uri = batch.layout.uri(batch.layout.prefix)
    except TargetError as e:
        result = finish(state, stop_reason="target-failed")
        result.target_error = e
        return result
    result = finish(state)
    if leftovers != ([], 0, None):
        result.batch_leftovers = leftover_lines(result_uri, *leftovers)
    return result


def header(sc: Scenario, clock: Any, real_why: str | None, path: Path, workers: int = 1,
           cluster: str | None = None) -> str:
    """The first line `loadgen run` prints: target, clock and where the results go
    (`cluster`: where the workers run, e.g. "Ray on this machine, 2 CPU(s)")."""
    aws = sc.target.kind == "aws"
    where = ("AWS Bedrock" + (f" via {sc.target.endpoint_url}" if sc.target.endpoint_url else "") if aws
             else sc.target.endpoint_url if sc.target.endpoint_url else
             "built-in emulator" + (" (its own process)" if workers > 1 or cluster else ""))
    if real_why:
        how = f" ({real_why})"
    elif workers > 1 or cluster:
        how = (f" x{clock.scale:g} shared by {workers} worker {'actors' if cluster else 'processes'} and the "
               "emulator, from one start "
               "instant (idle gaps are NOT skipped: processes cannot agree on a jump; latency is the "
               "emulator's modelled time plus the real transport overhead, not scaled)")
    else:
        how = (f" x{clock.scale:g} (idle gaps are skipped; latency is the emulator's modelled time plus "
               "the real transport overhead, not scaled)")
    split = f", {workers} workers (execution segments)" if workers > 1 or cluster else ""
    if cluster:
        split += f" as Ray actors on {cluster}"
    return (f"loadgen {__version__}: {sc.name} -> {where} ({sc.target.region}), clock {clock.kind}{how}{split}"
            + f", {len(sc.arms)} arm(s): {', '.join(a.name for a in sc.arms)}; results in {path}")


class _target:
    """The endpoint to call: the in-process emulator on 127.0.0.1, or the given URL, or AWS (None)."""

    def __init__(self, sc: Scenario, clock: Any, emulator_config: EmulatorConfig | None) -> None:
        self.sc, self.clock, self.cfg = sc, clock, emulator_config
        self._cm: Any = None
        self._batch: Any = None
        self.s3_url: str | None = None   # the built-in emulator's S3 (moto), when a batch arm needs it

    async def __aenter__(self) -> str | None:
        if self.cfg is None:
            return self.sc.target.endpoint_url
        model = EmulatorModel(self.cfg, clock=self.clock, rng=random.Random(f"{self.sc.seed}:emulator"),
                              region=self.sc.target.region, draw_seed=f"{self.sc.seed}:emulator")
        control = None
        if has_batch(self.sc):
            from loadgen.api.batch_emulator import EmulatorBatchBackend  # deferred: moto's server takes ~1.6 s to import; only batch runs need it

            self._batch = EmulatorBatchBackend(self.sc, self.clock, self.cfg)
            self.s3_url, control = self._batch.s3_url, self._batch.control
        self._cm = serve(model, self.clock, host="127.0.0.1", port=0, control=control)
        try:
            url = await self._cm.__aenter__()
        except OSError as e:
            raise TargetError(f"the emulator could not start: {e}") from e
        _log.info("built-in emulator listening on %s (%s clock)", url, self.clock.kind)
        return url

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self._cm is not None:
                await self._cm.__aexit__(*exc)
        finally:
            if self._batch is not None:
                await anyio.to_thread.run_sync(self._batch.close)
