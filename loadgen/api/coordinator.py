"""The coordinator of a run split over processes: what the segment workers share.

One per run, made by the parent (`loadgen run --workers N`; Ray's executor makes its
own). A worker gets a handle to it in its `SegmentSpec` and calls it synchronously from
its event loop, so every method must be quick (shared memory here; the Ray actor of
api/ray_coordinator.py caches what it can and leases USD in chunks, `SegmentSpec.usd_chunk`).
It holds:

- the budget (`engine/budget.py` BudgetPool: `take_usd`, `give_usd`, `take_request`,
  `exhausted`): one `--max-requests` / `--max-cost-usd` for the whole run;
- the start instant: each worker, ready to send, calls `ready(i)` and then waits in
  `wait_for_start()` for the Unix time of scenario second 0, which the parent fixes
  (`set_start`) once every worker is ready, so no worker's set-up makes the first
  requests late; the emulator process reads it with `start_instant()` (None before);
- control: `control()` -> (CONTINUE | STOP | ABORT, reason); the parent sets STOP on
  the first Ctrl-C and ABORT on the second or after the grace period; a worker sets
  STOP itself when the target fails (`stop("target-failed")`), so all stop together;
- progress: each worker writes its counters (PROGRESS_FIELDS) into its own row
  (`report(i, values)`) about twice a second; the parent sums the rows for one line.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any, Protocol, Sequence

from loadgen.engine.budget import SharedMemoryPool

CONTINUE, STOP, ABORT = 0, 1, 2
STOP_REASONS = ("interrupted", "max-cost", "max-requests", "target-failed")
# one worker's live counters, as it reports them: first attempts and retries sent,
# outcomes, observed cache states, USD, requests on the wire, its rpm and tpm over the
# last 60 scenario seconds (Metrics.recent, as one process's status line shows them;
# the workers' windows add up), and 1.0 once the worker has finished
PROGRESS_FIELDS = ("sent", "ok", "throttled", "failed", "warm", "cold", "cost_usd", "in_flight", "rpm", "tpm",
                   "finished")


class Coordinator(Protocol):
    """What `segment_worker.run_segment` calls (see the module doc)."""

    def take_usd(self, need: float, want: float) -> float: ...
    def give_usd(self, amount: float) -> None: ...
    def take_request(self, arm: int) -> bool: ...
    def exhausted(self) -> str | None: ...
    def ready(self, worker: int) -> None: ...
    def wait_for_start(self, timeout: float | None = None) -> float | None: ...
    def start_instant(self) -> float | None: ...
    def control(self) -> tuple[int, str | None]: ...
    def stop(self, reason: str) -> None: ...
    def report(self, worker: int, values: Sequence[float]) -> None: ...


class LocalCoordinator(SharedMemoryPool):
    """A Coordinator in shared memory for the processes of one machine (multiprocessing
    `spawn` context `ctx`); passed to each child as a Process argument."""

    def __init__(self, ctx: Any, workers: int, arms: int, max_requests: int | None,
                 max_cost_usd: float | None) -> None:
        super().__init__(ctx, arms, max_requests, max_cost_usd)
        self.workers = workers
        # [0] start instant (Unix s; 0: not yet), [1] control, [2] stop reason index + 1, [3] ready count
        self._state = ctx.RawArray("d", 4)
        self._go = ctx.Event()
        self._rows = ctx.RawArray("d", workers * len(PROGRESS_FIELDS))
        self._parent = os.getpid()

    # -- start ------------------------------------------------------------------

    def ready(self, worker: int) -> None:
        with self._lock:
            self._state[3] += 1

    def ready_count(self) -> int:
        return int(self._state[3])

    def set_start(self, instant: float) -> None:
        """Fix scenario second 0 at Unix time `instant` and release the workers."""
        self._state[0] = instant
        self._go.set()

    def wait_for_start(self, timeout: float | None = None) -> float | None:
        self._go.wait(timeout)
        return self.start_instant()

    def start_instant(self) -> float | None:
        t = self._state[0]
        return t if t > 0 else None

    # -- control ----------------------------------------------------------------

    def control(self) -> tuple[int, str | None]:
        """(CONTINUE | STOP | ABORT, the stop reason). In a child whose parent has gone
        (killed), ABORT: nobody is left to merge what it would send."""
        if os.getpid() != self._parent and os.getppid() != self._parent:
            return ABORT, "interrupted"
        code, why = int(self._state[1]), int(self._state[2])
        return code, (STOP_REASONS[why - 1] if why else None)

    def stop(self, reason: str) -> None:
        with self._lock:
            if not self._state[2]:
                self._state[2] = STOP_REASONS.index(reason) + 1
            self._state[1] = max(self._state[1], STOP)

    def abort(self) -> None:
        with self._lock:
            if not self._state[2]:
                self._state[2] = STOP_REASONS.index("interrupted") + 1
            self._state[1] = ABORT
        self._go.set()  # a worker still waiting for the start gives up

    # -- progress ---------------------------------------------------------------

    def report(self, worker: int, values: Sequence[float]) -> None:
        n = len(PROGRESS_FIELDS)
        self._rows[worker * n:(worker + 1) * n] = [float(v) for v in values]

    def totals(self) -> dict[str, float]:
        """The workers' rows summed, by PROGRESS_FIELDS name."""
        n = len(PROGRESS_FIELDS)
        rows = self._rows[:]
        return {f: math.fsum(rows[w * n + k] for w in range(self.workers)) for k, f in enumerate(PROGRESS_FIELDS)}

    def row(self, worker: int) -> dict[str, float]:
        n = len(PROGRESS_FIELDS)
        return dict(zip(PROGRESS_FIELDS, self._rows[worker * n:(worker + 1) * n]))


def start_in(seconds: float) -> float:
    """The Unix time `seconds` from now: a start instant every worker can still meet."""
    return time.time() + seconds


class blocked_sigint:
    """SIGINT blocked in this thread for the body: a child process started meanwhile
    inherits the mask, so no Ctrl-C reaches it before it has chosen to ignore Ctrl-C
    (the parent tells the workers and the emulator process when to stop)."""

    def __enter__(self) -> None:
        self._old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def __exit__(self, *exc: object) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old)
