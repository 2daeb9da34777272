"""Executors: how the segments of a split run are launched. Local processes here; Ray
actors running the same `segment_worker.run_segment` in api/ray_executor.py
(`loadgen run --cluster ray`).

An executor has three methods (the `Executor` protocol):

    coordinator(workers, arms, max_requests, max_cost_usd) -> a Coordinator
        (api/coordinator.py) the parent keeps and every SegmentSpec carries. Besides what
        workers call, the parent calls `ready_count()`, `set_start(unix_s)`,
        `start_instant()`, `control()`, `stop(reason)`, `abort()`, `totals()`, `row(i)`.
    launch(spec: SegmentSpec) -> Launched
        start `run_segment(spec)` somewhere; return at once.
    context: a multiprocessing context for the built-in emulator's process (None: the
        executor cannot host it; then the run needs --endpoint-url or --target aws).

Optional: `where` (a cluster's description, e.g. "Ray on this machine, 2 CPU(s)": the run
is split even into one segment, and the header, run.json and summary.json say where);
and a coordinator that cannot be handed to a local process (a Ray actor's) offers
`for_emulator()`, what the emulator process reads the start instant from instead.
An executor whose coordinator must first answer over the network offers
`coordinator_ready(co)`: it blocks, so the parent runs it on a thread (api/workers.py).

`Launched.poll()` is None while the segment runs, then a `PartOutcome`: its PartResult,
or None and a `failure` saying how it ended without one (a killed process: its exit
code). `Launched.kill()` ends it at once. The parent polls; nothing here blocks.
"""

from __future__ import annotations

import multiprocessing
import signal
from dataclasses import dataclass
from typing import Any, Protocol

from loadgen.api.coordinator import LocalCoordinator, blocked_sigint
from loadgen.api.segment_worker import PartResult, SegmentSpec, run_segment


@dataclass(frozen=True)
class PartOutcome:
    result: PartResult | None
    failure: str | None = None   # how it ended without a result ("exit code -9")


class Launched(Protocol):
    index: int

    def poll(self) -> PartOutcome | None: ...
    def kill(self) -> None: ...


class Executor(Protocol):
    context: Any

    def coordinator(self, workers: int, arms: int, max_requests: int | None,
                    max_cost_usd: float | None) -> Any: ...
    def launch(self, spec: SegmentSpec) -> Launched: ...


def _child_main(spec: SegmentSpec, conn: Any) -> None:
    """A local worker: Ctrl-C is the parent's to handle (it tells the workers through the
    coordinator), so the child ignores SIGINT; the parent blocked it before starting the
    child, so not even a Ctrl-C during the child's imports can reach it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    result = run_segment(spec)
    conn.send(result)
    conn.close()


class _LocalLaunched:
    def __init__(self, ctx: Any, spec: SegmentSpec) -> None:
        self.index = spec.index
        self._conn, theirs = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child_main, args=(spec, theirs), name=f"loadgen-worker-{spec.index}")
        with blocked_sigint():
            self._proc.start()
        theirs.close()
        self._outcome: PartOutcome | None = None

    def poll(self) -> PartOutcome | None:
        if self._outcome is not None:
            return self._outcome
        try:
            if self._conn.poll():
                result = self._conn.recv()
                self._proc.join(10.0)
                self._outcome = PartOutcome(result)
                return self._outcome
        except (EOFError, OSError):
            pass  # the child is gone without sending: its exit code says why
        if not self._proc.is_alive():
            self._proc.join()
            self._outcome = PartOutcome(None, f"exit code {self._proc.exitcode}")
        return self._outcome

    def kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()


class LocalProcessExecutor:
    """One `spawn`ed process per segment on this machine, coordinated in shared memory."""

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("spawn")

    def coordinator(self, workers: int, arms: int, max_requests: int | None,
                    max_cost_usd: float | None) -> LocalCoordinator:
        return LocalCoordinator(self.context, workers, arms, max_requests, max_cost_usd)

    def launch(self, spec: SegmentSpec) -> _LocalLaunched:
        return _LocalLaunched(self.context, spec)
