"""The coordinator of a run split over Ray actors (`loadgen run --cluster ray`): the
Coordinator of api/coordinator.py as a Ray actor, and its two ends.

  CoordinatorState   what the actor holds (Ray wraps the class; zero CPUs): the budget
                     (the rules of engine/budget.py's SharedMemoryPool, unshared), the
                     start instant, control, the ready count and the progress rows.
  WorkerCoordinator  a segment's end (travels in its SegmentSpec). The worker calls the
                     coordinator synchronously from its event loop, so nothing here may
                     wait on the network per request: control, exhaustion and the start
                     instant are read by a thread every CONTROL_POLL_S and cached; `ready`,
                     `report`, `stop` and `give_usd` are sent without waiting (Ray keeps
                     one caller's calls to an actor in order); `take_usd` waits, but USD
                     leases come in chunks (`usd_chunk`, SegmentSpec.usd_chunk) and the
                     segment keeps a reserve of up to RESERVE_REQUESTS worst-case requests
                     (at most RESERVE_SHARE of the cap over all segments) that `give_usd`
                     refills first, so the actor is asked about once per chunk, not once
                     per request when a chunk is smaller than a request's worst case;
                     `take_request` waits, once per first attempt,
                     and only for sessions under --max-requests (open-loop requests are
                     capped by schedule index without any call, engine/budget.py, so the
                     set sent is exactly the 1-worker one).
  RayCoordinator     the parent's end (api/workers.py calls it): reads come from a state
                     the executor's pump thread refreshes (api/ray_executor.py), writes
                     are sent without waiting, so the parent's event loop and its progress
                     line never wait on Ray. The emulator process on this machine reads
                     the start instant from shared memory (`for_emulator`).

Ray itself is imported only inside a Ray worker (WorkerCoordinator) or handed in.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Sequence

from loadgen.api.coordinator import ABORT, CONTINUE, PROGRESS_FIELDS, STOP
from loadgen.api.segment_worker import CONTROL_POLL_S
from loadgen.engine.budget import SharedMemoryPool

USD_CHUNK_SHARE = 0.05   # of the cap, the USD all segments together may hold beyond their in-flight worst case
# worst-case requests a segment keeps in its reserve (WorkerCoordinator): the actor is
# asked about once per this many requests even when the chunk is smaller than one request;
# the reserves of all segments together hold at most RESERVE_SHARE of the cap, so one
# segment cannot take a small cap from the others (under it, one ask per request remains)
RESERVE_REQUESTS = 4
RESERVE_SHARE = 0.10
START_POLL_S = 0.005     # real seconds between a waiting worker's looks at the start instant


def usd_chunk(max_cost_usd: float | None, workers: int) -> float:
    """USD one segment may hold beyond its in-flight worst case: a remote pool is asked once
    per chunk instead of once per request, and the segments together hold back at most
    USD_CHUNK_SHARE of the cap, plus their reserves (`usd_reserve`), when the run stops
    at it. The actor grants only what is left,
    so the cap itself is never passed."""
    if max_cost_usd is None:
        return 0.0
    return USD_CHUNK_SHARE * max_cost_usd / max(1, workers)


def usd_reserve(max_cost_usd: float | None, workers: int) -> float:
    """The most USD one segment's WorkerCoordinator keeps in its reserve."""
    if max_cost_usd is None:
        return 0.0
    return RESERVE_SHARE * max_cost_usd / max(1, workers)


class _Plain:
    """SharedMemoryPool's constructors over plain Python objects: the actor is one process
    and runs one call at a time, so the pool's rules apply as they are, unshared."""

    Lock = threading.Lock

    @staticmethod
    def RawArray(_kind: str, n: int) -> list[float]:  # noqa: N802 - multiprocessing's name
        return [0.0] * n


class CoordinatorState:
    """The run's coordinator as plain state: what the Ray actor holds (Ray wraps this
    class; it is also tested alone). Methods mirror api/coordinator.py's Coordinator."""

    def __init__(self, workers: int, arms: int, max_requests: int | None, max_cost_usd: float | None) -> None:
        self.pool = SharedMemoryPool(_Plain, arms, max_requests, max_cost_usd)
        self.workers = workers
        self.start: float | None = None
        self.code, self.reason = CONTINUE, None
        self.ready_count = 0
        self.rows = [[0.0] * len(PROGRESS_FIELDS) for _ in range(workers)]

    def take_usd(self, need: float, want: float) -> tuple[float, str | None]:
        return self.pool.take_usd(need, want), self.pool.exhausted()

    def give_usd(self, amount: float) -> None:
        self.pool.give_usd(amount)

    def take_request(self, arm: int) -> tuple[bool, str | None]:
        return self.pool.take_request(arm), self.pool.exhausted()

    def ready(self, worker: int) -> None:
        self.ready_count += 1

    def set_start(self, instant: float) -> None:
        if self.start is None:
            self.start = instant

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.code = max(self.code, STOP)

    def abort(self) -> None:
        self.reason = self.reason or "interrupted"
        self.code = ABORT

    def report(self, worker: int, values: Sequence[float]) -> None:
        self.rows[worker] = [float(v) for v in values]

    def worker_view(self) -> tuple[int, str | None, str | None, float | None]:
        """What a worker polls: (control, reason, exhausted, start instant)."""
        return self.code, self.reason, self.pool.exhausted(), self.start

    def parent_view(self) -> dict[str, Any]:
        """What the parent polls: the worker view, the ready count and every row."""
        return {"code": self.code, "reason": self.reason, "start": self.start, "ready": self.ready_count,
                "rows": [list(r) for r in self.rows]}


class WorkerCoordinator:
    """A segment's Coordinator (api/coordinator.py) over the coordinator actor (module doc).
    Travels in the SegmentSpec; its poll thread starts in the worker, on first use."""

    def __init__(self, actor: Any, reserve_usd: float = 0.0) -> None:
        self._actor, self._reserve_cap = actor, reserve_usd
        self._setup()

    def _setup(self) -> None:
        self._view: tuple[int, str | None, str | None, float | None] = (CONTINUE, None, None, None)
        # what this worker said (stop) holds: the poll thread may bring an older view after it
        self._said: tuple[int, str | None] = (CONTINUE, None)
        self._exhausted: str | None = None
        # USD leased from the actor and not handed to the segment's budget: taken from and
        # given back to here first, up to RESERVE_REQUESTS of the largest `need` seen
        # and never beyond `reserve_usd` (usd_reserve)
        self._reserve = 0.0
        self._hold = 0.0
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"actor": self._actor, "reserve_cap": self._reserve_cap}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._actor, self._reserve_cap = state["actor"], state["reserve_cap"]
        self._setup()

    def _ray(self) -> Any:
        import ray  # deferred: Ray is an optional extra; this runs only inside a Ray worker

        return ray

    def _poll_forever(self) -> None:
        ray = self._ray()
        failures = 0
        while not self._closed.wait(CONTROL_POLL_S):
            try:
                self._view = ray.get(self._actor.worker_view.remote(), timeout=10.0)
                failures = 0
            except Exception:  # noqa: BLE001 - the coordinator gone means the parent is gone
                failures += 1
                if failures >= 3:  # nobody is left to merge what this worker would send
                    self._view = (ABORT, "interrupted", self._view[2], self._view[3])

    def _follow(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._poll_forever, name="loadgen-coordinator-poll",
                                                daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._closed.set()
        reserve, self._reserve = self._reserve, 0.0
        if reserve > 0:  # the other segments may still spend it
            self._actor.give_usd.remote(reserve)

    # -- the budget (engine/budget.py BudgetPool) ------------------------------------

    def take_usd(self, need: float, want: float) -> float:
        """`want` (or at least `need`) from the reserve, else from the actor: what the reserve
        lacks plus RESERVE_REQUESTS x `need` to refill it (the actor grants no more than is
        left of the cap, and refuses below `need`)."""
        want = max(want, need)
        self._hold = min(max(self._hold, RESERVE_REQUESTS * need), self._reserve_cap)
        if self._reserve < need:
            ask = want + self._hold - self._reserve
            got, ex = self._ray().get(self._actor.take_usd.remote(need - self._reserve, ask))
            self._exhausted = self._exhausted or ex
            if got <= 0:
                return 0.0  # refused: the reserve goes back at close
            self._reserve += got
        given = min(want, self._reserve)
        self._reserve -= given
        return given

    def give_usd(self, amount: float) -> None:
        if amount <= 0:
            return
        self._reserve += amount
        spare = self._reserve - self._hold
        if spare > 1e-12:
            self._reserve = self._hold
            self._actor.give_usd.remote(spare)  # calls from one caller reach an actor in order

    def take_request(self, arm: int) -> bool:
        ok, ex = self._ray().get(self._actor.take_request.remote(arm))
        self._exhausted = self._exhausted or ex
        return ok

    def exhausted(self) -> str | None:
        self._follow()
        return self._exhausted or self._view[2]

    # -- start, control, progress ------------------------------------------------------

    def ready(self, worker: int) -> None:
        self._actor.ready.remote(worker)
        self._follow()

    def wait_for_start(self, timeout: float | None = None) -> float | None:
        ray = self._ray()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._view = ray.get(self._actor.worker_view.remote())
            if self._view[3] is not None or self._view[0] == ABORT:
                return self._view[3]
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(START_POLL_S)

    def start_instant(self) -> float | None:
        self._follow()
        return self._view[3]

    def control(self) -> tuple[int, str | None]:
        self._follow()
        code, why = self._view[0], self._view[1]
        said, said_why = self._said
        if code >= said:
            return code, why
        return said, why or said_why

    def stop(self, reason: str) -> None:
        code, why = self._said
        self._said = (max(code, STOP), why or reason)
        self._actor.stop.remote(reason)

    def report(self, worker: int, values: Sequence[float]) -> None:
        self._actor.report.remote(worker, [float(v) for v in values])


class RayCoordinator:
    """The parent's view of the coordinator actor (what api/workers.py calls): every read is
    of a state the executor's pump thread refreshes every PUMP_S, every write is sent
    without waiting, so nothing in the parent's event loop waits on Ray."""

    def __init__(self, ray: Any, actor: Any, workers: int, start_ctx: Any) -> None:
        self._ray, self.actor, self.workers = ray, actor, workers
        self._view: dict[str, Any] = {"code": CONTINUE, "reason": None, "start": None, "ready": 0,
                                      "rows": [[0.0] * len(PROGRESS_FIELDS) for _ in range(workers)]}
        # what this side said (set_start, stop, abort) holds before the actor's view shows it
        self._said: tuple[int, str | None, float | None] = (CONTINUE, None, None)
        # the emulator process reads the start instant from shared memory (for_emulator)
        self._start = start_ctx.RawArray("d", 1) if start_ctx is not None else None

    def refresh(self, timeout: float = 10.0) -> None:
        self._view = self._ray.get(self.actor.parent_view.remote(), timeout=timeout)

    def for_emulator(self) -> "_StartInstant":
        return _StartInstant(self._start)

    def ready_count(self) -> int:
        return int(self._view["ready"])

    def set_start(self, instant: float) -> None:
        code, why, _ = self._said
        self._said = (code, why, instant)
        if self._start is not None:
            self._start[0] = instant
        self.actor.set_start.remote(instant)

    def start_instant(self) -> float | None:
        start = self._view["start"]
        return start if start is not None else self._said[2]

    def control(self) -> tuple[int, str | None]:
        code, why, _ = self._said
        view = self._view
        if view["code"] >= code:
            return int(view["code"]), view["reason"]
        return code, view["reason"] or why

    def stop(self, reason: str) -> None:
        code, why, start = self._said
        self._said = (max(code, STOP), why or reason, start)
        self.actor.stop.remote(reason)

    def abort(self) -> None:
        _, why, start = self._said
        self._said = (ABORT, why or "interrupted", start)
        self.actor.abort.remote()

    def totals(self) -> dict[str, float]:
        rows = self._view["rows"]
        return {f: math.fsum(r[k] for r in rows) for k, f in enumerate(PROGRESS_FIELDS)}

    def row(self, worker: int) -> dict[str, float]:
        return dict(zip(PROGRESS_FIELDS, self._view["rows"][worker]))


class _StartInstant:
    """The start instant in shared memory, for the emulator process on this machine (its
    SharedClock's anchor): set by the parent with the actor's."""

    def __init__(self, cell: Any) -> None:
        self._cell = cell

    def start_instant(self) -> float | None:
        t = self._cell[0] if self._cell is not None else 0.0
        return t if t > 0 else None
