"""A run's outputs beside the results directory's files: the interval aggregator and its
sinks (HDR interval logs always; the `--output jsonl` stream and CloudWatch when asked).

`RunState` (session.py) feeds every attempt to `record` (a few counter updates and
histogram records: never I/O; the run's whole-run Metrics is built from the intervals);
`tick` runs beside the runner on runs with a real or warp clock and closes intervals as
scenario time passes them; `drain` gives CloudWatch its
last datums at the end of `drive`; `close` (in `finish`) closes what is left and returns
the figures summary.json keeps under `outputs`. In virtual time (simulate) nothing
ticks: the aggregator closes intervals as later attempts arrive, and `close` the rest.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import anyio

from loadgen.api.cloudwatch import CloudWatchSink
from loadgen.api.setup import InputError
from loadgen.engine.transport import TargetError, have_credentials
from loadgen.results.folder_probe import cannot_create_in
from loadgen.results.interval_logs import IntervalLogs
from loadgen.results.interval_stream import INTERVALS_FILE, JsonlStream
from loadgen.results.intervals import IntervalAggregator, LiveTotals
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import Scenario
from loadgen.scenario.outputs import CloudWatchOutput

TICK_S = 0.5          # real seconds between interval checks while a run goes
OUTPUT_KINDS = ("jsonl", "jsonl=PATH", "jsonl=-", "cloudwatch")


@dataclass(frozen=True)
class OutputFlags:
    """What `--output` asked for: `jsonl` is None (no stream), "" (intervals.jsonl in the
    results directory), "-" (stdout) or a file path; `cloudwatch`: send even without an
    [outputs.cloudwatch] table (its defaults then)."""

    jsonl: str | None = None
    cloudwatch: bool = False


def parse_output_flags(values: Sequence[str]) -> OutputFlags:
    """`--output` values -> OutputFlags; ValueError with a one-line message on a bad one."""
    jsonl, cw = None, False
    for v in values:
        kind, eq, arg = v.partition("=")
        if kind == "jsonl":
            if eq and not arg:
                raise ValueError("--output jsonl=PATH: the path is empty (use jsonl for intervals.jsonl in the "
                                 "results directory, jsonl=- for stdout)")
            if jsonl is not None:
                raise ValueError("--output jsonl: given twice")
            jsonl = arg
        elif kind == "cloudwatch" and not eq:
            cw = True
        else:
            raise ValueError(f"--output {v}: expected one of {', '.join(OUTPUT_KINDS)}")
    return OutputFlags(jsonl=jsonl, cloudwatch=cw)


def cloudwatch_config(sc: Scenario, flags: OutputFlags | None) -> CloudWatchOutput | None:
    """The CloudWatch settings this run uses: the scenario's table, or its defaults for
    `--output cloudwatch` alone; None when neither asks for CloudWatch."""
    cw = sc.outputs.cloudwatch
    if cw is None and flags is not None and flags.cloudwatch:
        cw = CloudWatchOutput()
    return cw


def check_cloudwatch_credentials(sc: Scenario, flags: OutputFlags | None) -> None:
    """TargetError when the run would send CloudWatch metrics and the standard AWS
    credential chain finds nothing: every call would fail, so it is said before the run,
    not as a count of lost datums after it (nothing is sent to look)."""
    if cloudwatch_config(sc, flags) is not None and not have_credentials():
        raise TargetError("CloudWatch output: no AWS credentials found (standard chain: environment, ~/.aws, SSO, "
                          "instance role) to sign PutMetricData with; set them up (any values for a local "
                          "endpoint such as AWS_ENDPOINT_URL_CLOUDWATCH) or drop [outputs.cloudwatch] and "
                          "--output cloudwatch")


def check_flags(flags: OutputFlags | None) -> None:
    """InputError before anything is written: `jsonl=PATH` naming a file that exists (never
    overwritten), a folder that does not, or one no file can be created in."""
    if flags is None or flags.jsonl in (None, "", "-"):
        return
    path = Path(flags.jsonl)
    if path.exists():
        raise InputError(f"--output jsonl={flags.jsonl}: {path} exists; loadgen never overwrites a file "
                         "(name a new one)")
    if not path.parent.is_dir():
        raise InputError(f"--output jsonl={flags.jsonl}: no folder {path.parent} to write it in")
    why = cannot_create_in(path.parent)
    if why is not None:
        raise InputError(f"--output jsonl={flags.jsonl}: cannot create a file in {path.parent}: {why}")


def open_jsonl(spec: str, results_path: Path, arms: Sequence[str]) -> JsonlStream:
    """The jsonl sink for `spec` ("" the results directory, "-" stdout, else a new file)."""
    if spec == "-":
        return JsonlStream(sys.stdout, arms, owned=False)
    path = results_path / INTERVALS_FILE if spec == "" else Path(spec)
    try:
        f: TextIO = open(path, "x", encoding="utf-8")
    except FileExistsError:
        raise InputError(f"--output jsonl={spec}: {path} exists; loadgen never overwrites a file "
                         "(name a new one)") from None
    except OSError as e:
        raise InputError(f"--output jsonl={spec}: cannot create {path}: {e.strerror or e}") from None
    return JsonlStream(f, arms, owned=True)


class _Before:
    """A sink that runs `fn` before the others see an interval."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn

    def on_interval(self, iv: Any) -> None:
        self.fn()

    def close(self) -> None:
        self.fn()


class RunOutputs:
    """The interval aggregator of one run and the sinks it feeds."""

    def __init__(self, sc: Scenario, results_path: Path, wall_start: float, flags: OutputFlags | None = None,
                 *, cloudwatch: bool = True, flush: Callable[[], None] | None = None,
                 whole: Metrics | None = None, close_on_record: bool = True) -> None:
        """`flush`: hands requests.jsonl's buffered attempts to the kernel (ResultsDir.flush),
        called before each interval is written, so no figure is on disk ahead of its attempts.
        `whole`: the run's Metrics, built from the intervals (IntervalAggregator); complete
        once `drain` or `close` ran, `live` reads it with the open intervals until then.
        `close_on_record=False`: intervals close only as the ticker (`run`) or the end
        closes them: a split run's parent reads attempts seconds after they end, part after
        part, so a fresh attempt must not close the interval another part's belong to."""
        arms = [ArmInfo.from_arm(a) for a in sc.arms]
        names = [a.name for a in arms]
        self.sc, self.flags = sc, flags or OutputFlags()
        self.logs = IntervalLogs(results_path, names, wall_start)
        sinks: list[Any] = ([_Before(flush)] if flush is not None else []) + [self.logs]
        self.jsonl: JsonlStream | None = None
        self.jsonl_path: str | None = None
        self.cloudwatch: CloudWatchSink | None = None
        try:
            if self.flags.jsonl is not None:
                self.jsonl = open_jsonl(self.flags.jsonl, results_path, names)
                self.jsonl_path = ("-" if self.flags.jsonl == "-" else
                                   str(results_path / INTERVALS_FILE) if self.flags.jsonl == "" else self.flags.jsonl)
                sinks.append(self.jsonl)
            cw = cloudwatch_config(sc, self.flags) if cloudwatch else None
            if cw is not None:
                self.cloudwatch = CloudWatchSink(cw, sc, arms, base_interval=sc.outputs.interval)
                sinks.append(self.cloudwatch)
        except BaseException:
            for s in sinks:
                s.close()
            raise
        self.aggregator = IntervalAggregator(arms, sc.outputs.interval, sinks, whole=whole,
                                             close_on_record=close_on_record)
        self.live = LiveTotals(self.aggregator) if whole is not None else None
        self.closed = False

    def record(self, a: Any, costs: Any) -> None:
        self.aggregator.record(a, costs)

    async def run(self, clock: Any, before_tick: Callable[[float], float] | None = None) -> None:
        """Beside the runner (real or warp clock): close intervals as scenario time passes
        them, and send CloudWatch's datums in the background. Cancelled at the end.
        `before_tick(now)`: called before each look; returns the scenario time to close up
        to instead of `now` (a split run's parent records the attempts its workers wrote
        since the last look and says up to when it has read every part)."""
        async with anyio.create_task_group() as tg:
            if self.cloudwatch is not None:
                tg.start_soon(self.cloudwatch.send_loop)
            while True:
                await anyio.sleep(TICK_S)
                now = clock.now()
                self.aggregator.close_until(now if before_tick is None else before_tick(now), time.time())

    async def drain(self, now: float) -> None:
        """The run is over: close the last intervals and give CloudWatch a bounded time to
        take them (what it does not take is counted as dropped)."""
        self.aggregator.close_until(now + self.aggregator.grace_s, time.time())
        self._close(now)
        if self.cloudwatch is not None:
            await self.cloudwatch.drain()

    def close(self, now: float) -> dict | None:
        """Close every sink (idempotent) and return summary.json's `outputs` figures (None
        when only the interval logs were written: the summary stays as it was)."""
        self._close(now)
        if self.cloudwatch is not None:
            self.cloudwatch.abandon()   # whatever is still queued now is lost: counted
        if self.jsonl is None and self.cloudwatch is None:
            return None
        out: dict[str, Any] = {"interval_s": self.aggregator.interval_s, "intervals": self.aggregator.closed,
                               "late": self.aggregator.late, "hlog_lines": self.logs.lines}
        if self.jsonl is not None:
            out["jsonl"] = {"path": self.jsonl_path, "lines": self.jsonl.lines}
        if self.cloudwatch is not None:
            out["cloudwatch"] = self.cloudwatch.figures()
        return out

    def _close(self, now: float) -> None:
        if not self.closed:
            self.closed = True
            self.aggregator.close_all(now, time.time())
