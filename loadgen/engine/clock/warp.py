"""WarpClock: scenario time = offset + scale x real elapsed, with idle jumps (loadgen run).

When every driver (`Clock.driver()`) is asleep on the clock, so no request is in flight,
the clock jumps forward to the earliest wake-up: idle gaps cost no wall time. A driver
that is not sleeping on the clock is busy (sending, waiting for a response, waiting for
an in-flight slot), and while any driver is busy time only flows. Sleeps outside a
driver never cause jumps, but wake promptly when one happens.

With `hold_between_requests` (loadgen run) it also stands still while no request is in
flight or a driver is due to send, so the generator's own work (a late timer, building
a request) is not magnified by `scale` into schedule lag.

All the bookkeeping (drivers awake, due, requests in flight, wake-up heap) lives here;
the runner only makes drivers and marks requests (see loadgen/engine/clock/__init__.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import time
from typing import Iterator

import anyio

# The current task's driver cell, None outside a driver. Its one item says whether the
# driver is counted as *due* (see WarpClock.__init__); one cell per driver task.
_driver_cell: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("loadgen_driver", default=None)

# Real seconds a held clock waits for a due driver while requests are in flight before it
# lets time flow anyway. A driver waiting for something only in-flight requests can free
# says so (`waiting()`); this is the safety net if one does not, so a run slows, never hangs.
STALL_CAP_S = 0.5


class _Driver:
    """One load-driving task of a WarpClock: counted awake (and due) from creation."""

    __slots__ = ("_clock", "_token")

    def __init__(self, clock: "WarpClock") -> None:
        self._clock = clock
        clock._active += 1
        if clock._hold:
            clock._due += 1  # the task is due from its start until it first sends or sleeps

    def __enter__(self) -> None:
        c = self._clock
        self._token = _driver_cell.set([c._hold])
        c._refresh()

    def __exit__(self, *exc: object) -> None:
        c = self._clock
        c._active -= 1
        c._settle()
        _driver_cell.reset(self._token)
        c._maybe_jump()
        c._refresh()


class WarpClock:
    """Scenario time = offset + scale x real elapsed, with idle jumps (module doc)."""

    kind = "warp"

    def __init__(self, scale: float = 1.0, monotonic=time.monotonic, *, hold_between_requests: bool = False) -> None:
        """hold_between_requests (loadgen run): scenario time flows only while requests are
        in flight and no driver is *due*. A driver is due from the moment its wake-up time
        is reached (or it is started) until it sends (`in_flight`), sleeps again, waits for
        a slot (`waiting`) or ends: its own work between requests is the generator's, not
        the modelled service's, and `scale` would multiply it into schedule lag (2 ms of a
        late timer or of building a request become 120 ms at x60). So time stands still
        between requests, a timer that fires late does not make its request late in
        scenario time, and requests due at the same moment (one per arm) all start at that
        moment. (Without it: p99 schedule lag 1.4 s on slow-agent on a busy machine.)"""
        if not scale > 0:
            raise ValueError("time scale must be > 0")
        self.scale = float(scale)
        self._mono = monotonic
        self._t0 = monotonic()
        self._offset = 0.0
        self._hold = hold_between_requests
        self._flying = 0  # requests on the wire (in_flight bodies)
        self._due = 0     # drivers doing their own work (see __init__ doc)
        self._held: float | None = 0.0 if hold_between_requests else None  # the time while held
        self._held_since = monotonic()
        self._active = 0  # drivers not asleep on the clock
        self._deadlines: list[tuple[float, int]] = []  # heap of sleeping drivers' wake times
        self._removed: set[int] = set()
        self._seq = itertools.count()
        self._jump_event: anyio.Event | None = None
        self.jumped_s = 0.0  # scenario seconds skipped by idle jumps
        self.forced_flows = 0  # times STALL_CAP_S let time flow past a due driver

    def now(self) -> float:
        if self._held is not None:
            return self._held
        t = self._offset + self.scale * (self._mono() - self._t0)
        if self._hold:
            # time never passes a sleeping driver's wake-up: it stands at that time until
            # the driver has woken and sent (or slept again)
            d = self._earliest_deadline()
            if d is not None and t >= d:
                self._hold_at(max(d, self._offset))
                return self._held  # type: ignore[return-value]
        return t

    def start(self) -> None:
        self._t0 = self._mono()
        self._offset = 0.0
        if self._held is not None:
            self._hold_at(0.0)

    def driver(self) -> _Driver:
        return _Driver(self)

    def _hold_at(self, t: float) -> None:
        self._held = t
        self._held_since = self._mono()

    def _refresh(self) -> None:
        """Hold or release time after a change of what is in flight or due."""
        if not self._hold:
            return
        if self._held is None:
            if self._flying == 0 or self._due > 0:
                self._hold_at(self.now())
            return
        if self._flying > 0 and self._due == 0:
            d = self._earliest_deadline()
            if d is None or d > self._held:
                self._t0, self._offset, self._held = self._mono(), self._held, None

    def _settle(self) -> None:
        """The current driver stops being due (it sends, sleeps, waits or ends)."""
        cell = _driver_cell.get()
        if cell is not None and cell[0]:
            cell[0] = False
            self._due -= 1

    def _unsettle(self) -> None:
        """The current driver is due again (woke up, or its request ended)."""
        cell = _driver_cell.get()
        if cell is not None and not cell[0] and self._hold:
            cell[0] = True
            self._due += 1

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        self._settle()
        self._flying += 1
        self._refresh()
        try:
            yield
        finally:
            self._flying -= 1
            self._unsettle()
            self._refresh()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """The current driver waits for something only requests in flight can free (an
        in-flight slot): it is not due meanwhile, so time flows for them."""
        self._settle()
        self._refresh()
        try:
            yield
        finally:
            self._unsettle()
            self._refresh()

    def _jump_to(self, t: float) -> None:
        """Move scenario time forward to t (never back) and wake sleepers to re-check."""
        gap = t - self.now()
        if gap <= 0:
            return
        if self._held is not None:
            self._hold_at(t)
        else:
            self._offset += gap
        self.jumped_s += gap
        if self._jump_event is not None:
            self._jump_event.set()
            self._jump_event = None

    def _earliest_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] in self._removed:
            self._removed.discard(heapq.heappop(self._deadlines)[1])
        return self._deadlines[0][0] if self._deadlines else None

    def _maybe_jump(self) -> None:
        if self._active == 0:
            t = self._earliest_deadline()
            if t is not None:
                self._jump_to(t)

    async def sleep_until(self, t: float) -> None:
        if _driver_cell.get() is None:
            await self._wait(t)
            return
        key = next(self._seq)
        heapq.heappush(self._deadlines, (t, key))
        self._active -= 1
        self._settle()
        try:
            self._maybe_jump()
            self._refresh()
            await self._wait(t)
        finally:
            self._active += 1
            self._removed.add(key)
            self._unsettle()
            self._refresh()

    async def _wait(self, t: float) -> None:
        while True:
            delay = t - self.now()
            if delay <= 0:
                return
            if (self._held is not None and self._flying > 0
                    and self._mono() - self._held_since > STALL_CAP_S):
                # a due driver waits for something it did not declare (see STALL_CAP_S)
                self.forced_flows += 1
                self._t0, self._offset, self._held = self._mono(), self._held, None
                continue
            if self._jump_event is None:
                self._jump_event = anyio.Event()
            ev = self._jump_event
            # held: nothing real to wait for but a change, so re-check every few ms
            timeout = delay / self.scale if self._held is None else min(delay / self.scale, 0.005)
            with anyio.move_on_after(timeout):
                await ev.wait()

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)
