"""Clocks: where scenario time comes from.

Every time loadgen records or waits for is *scenario time* in seconds since the run
started, read from a Clock. The kinds share one protocol:

  RealClock    scenario time = monotonic time since start (always for --target aws)
  WarpClock    scenario time = offset + scale x real elapsed. When every participant
               task is asleep on the clock (so no request is in flight), the clock
               jumps forward to the earliest wake-up: idle gaps cost no wall time.
               With `hold_between_requests` (loadgen run) it also stands still while
               no request is in flight or a participant is due to send, so the
               generator's own work (a late timer, building a request) is not
               magnified by `scale` into schedule lag.
  VirtualClock (loadgen simulate) an event loop whose time only moves when nothing
               can run; see its class docstring.

Participants are the tasks that drive load (session tasks, the open-loop
dispatcher and its request workers); they run inside `with clock.participant():`. A participant that is
not sleeping on the clock is busy (sending, waiting for a response, waiting for an
in-flight slot), and while any participant is busy time only flows. Sleeps by
non-participants (the in-process emulator pacing its modelled latency, progress
display) never cause jumps, but wake promptly when one happens.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import time
from typing import Iterator, Protocol

import anyio


class Clock(Protocol):
    kind: str
    scale: float

    def now(self) -> float:
        """Scenario seconds since the run started."""

    async def sleep_until(self, t: float) -> None:
        """Return once now() >= t (scenario seconds)."""

    async def sleep(self, dt: float) -> None:
        """Sleep dt scenario seconds."""

    def start(self) -> None:
        """Re-zero scenario time: called when the runner starts, so set-up (client creation,
        emulator start) does not make the first requests look late."""

    def enter(self) -> None:
        """Count a participant that is about to start (call before spawning its task)."""

    def participant(self, entered: bool = False) -> contextlib.AbstractContextManager[None]:
        """Mark the current task as one that drives load (see module doc).

        entered=True when the spawner already called enter() for this task, so no
        idle jump can happen between spawning it and its first step.
        """

    def in_flight(self) -> contextlib.AbstractContextManager[None]:
        """Mark the body as one request on the wire (the transport wraps each call)."""

    def waiting(self) -> contextlib.AbstractContextManager[None]:
        """Mark the body as a participant waiting for an in-flight slot (see WarpClock)."""


class _NoBookkeeping:
    """Participant, in-flight and waiting marks, for clocks that need none of them:
    a real clock never jumps, and a virtual clock's event loop sees what is runnable."""

    def enter(self) -> None:
        pass

    @contextlib.contextmanager
    def participant(self, entered: bool = False) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        yield


class RealClock(_NoBookkeeping):
    kind = "real"
    scale = 1.0

    def __init__(self, monotonic=time.monotonic) -> None:
        self._mono = monotonic
        self._t0 = monotonic()

    def now(self) -> float:
        return self._mono() - self._t0

    def start(self) -> None:
        self._t0 = self._mono()

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await anyio.sleep(delay)

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)


_is_participant: contextvars.ContextVar[bool] = contextvars.ContextVar("loadgen_participant", default=False)
# A participant's "due" flag (see WarpClock.hold_between_requests), one cell per participant task.
_due_cell: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("loadgen_due", default=None)

# Real seconds a held clock waits for a due participant while requests are in flight before it
# lets time flow anyway. A participant waiting for something only in-flight requests can free
# says so (`waiting()`); this is the safety net if one does not, so a run slows, never hangs.
STALL_CAP_S = 0.5


class WarpClock:
    """Scenario time = offset + scale x real elapsed, with idle jumps (module doc)."""

    kind = "warp"

    def __init__(self, scale: float = 1.0, monotonic=time.monotonic, *, hold_between_requests: bool = False) -> None:
        """hold_between_requests (loadgen run): scenario time flows only while requests are
        in flight and no participant is *due*. A participant is due from the moment its
        wake-up time is reached (or it is started) until it sends (`in_flight`), sleeps
        again, waits for a slot (`waiting`) or ends: its own work between requests is the
        generator's, not the modelled service's, and `scale` would multiply it into schedule
        lag (2 ms of a late timer or of building a request become 120 ms at x60). So time
        stands still between requests, a timer that fires late does not make its request
        late in scenario time, and requests due at the same moment (one per arm) all start
        at that moment. (Without it: p99 schedule lag 1.4 s on slow-agent on a busy machine.)"""
        if not scale > 0:
            raise ValueError("time scale must be > 0")
        self.scale = float(scale)
        self._mono = monotonic
        self._t0 = monotonic()
        self._offset = 0.0
        self._hold = hold_between_requests
        self._flying = 0  # requests on the wire (in_flight bodies)
        self._due = 0     # participants doing their own work (see __init__ doc)
        self._held: float | None = 0.0 if hold_between_requests else None  # the time while held
        self._held_since = monotonic()
        self._active = 0  # participants not asleep on the clock
        self._deadlines: list[tuple[float, int]] = []  # heap of sleeping participants' wake times
        self._removed: set[int] = set()
        self._seq = itertools.count()
        self._jump_event: anyio.Event | None = None
        self.jumped_s = 0.0  # scenario seconds skipped by idle jumps
        self.forced_flows = 0  # times STALL_CAP_S let time flow past a due participant

    def now(self) -> float:
        if self._held is not None:
            return self._held
        t = self._offset + self.scale * (self._mono() - self._t0)
        if self._hold:
            # time never passes a sleeping participant's wake-up: it stands at that time
            # until the participant has woken and sent (or slept again)
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
        """The current participant stops being due (it sends, sleeps, waits or ends)."""
        cell = _due_cell.get()
        if cell is not None and cell[0]:
            cell[0] = False
            self._due -= 1

    def _unsettle(self) -> None:
        """The current participant is due again (woke up, or its request ended)."""
        cell = _due_cell.get()
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
        """The current participant waits for something only requests in flight can free
        (an in-flight slot): it is not due meanwhile, so time flows for them."""
        self._settle()
        self._refresh()
        try:
            yield
        finally:
            self._unsettle()
            self._refresh()

    def jump_to(self, t: float) -> None:
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

    def enter(self) -> None:
        self._active += 1
        if self._hold:
            self._due += 1  # its task's participant(entered=True) takes this over

    @contextlib.contextmanager
    def participant(self, entered: bool = False) -> Iterator[None]:
        token = _is_participant.set(True)
        cell_token = _due_cell.set([self._hold])
        if not entered:
            self._active += 1
            if self._hold:
                self._due += 1
        self._refresh()
        try:
            yield
        finally:
            self._active -= 1
            self._settle()
            _due_cell.reset(cell_token)
            _is_participant.reset(token)
            self._maybe_jump()
            self._refresh()

    def _earliest_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] in self._removed:
            self._removed.discard(heapq.heappop(self._deadlines)[1])
        return self._deadlines[0][0] if self._deadlines else None

    def _maybe_jump(self) -> None:
        if self._active == 0:
            t = self._earliest_deadline()
            if t is not None:
                self.jump_to(t)

    async def sleep_until(self, t: float) -> None:
        if not _is_participant.get():
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
                # a due participant waits for something it did not declare (see STALL_CAP_S)
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


# --------------------------------------------------------------------------- virtual

import asyncio
import selectors


class VirtualClock(_NoBookkeeping):
    """Virtual time for `loadgen simulate`: time moves only when nothing can run.

    The clock owns an asyncio event loop (`loop_factory`, for
    `anyio.run(..., backend_options={"loop_factory": clock.loop_factory})`) whose
    `time()` is scenario seconds. When the loop has no ready callback it would block
    in `select(timeout)` until its next timer; instead the selector polls without
    blocking and the clock jumps by `timeout`, straight to that timer. So every timer
    in the process is virtual: `clock.sleep_until`, `anyio.sleep`, `move_on_after` /
    `fail_after` deadlines, retry backoff. A runnable task (even one waiting on a
    semaphore another task will release) keeps time still, because the loop sees it.

    Why not participant bookkeeping as in WarpClock: counting "busy" tasks cannot tell
    a task waiting for an in-flight slot from one doing work, and in virtual time no
    real time flows to break that tie, so it would stall. The loop itself knows.
    Why not a library (aiotools.VirtualClock, looptime): both patch the private
    `loop._selector` / loop class at run time; this uses only the public
    `SelectorEventLoop(selector)` and `time()` hooks, in ~50 lines.

    participant()/enter() are no-ops here; `scale` is 1 (loop seconds are scenario
    seconds). One clock drives one event loop (one run).
    """

    kind = "virtual"
    scale = 1.0

    def __init__(self) -> None:
        self._t = 0.0
        self.jumped_s = 0.0  # scenario seconds skipped while nothing was runnable

    def now(self) -> float:
        return self._t

    def start(self) -> None:
        pass  # virtual time only moves when the run makes it: nothing to re-zero

    def loop_factory(self) -> asyncio.AbstractEventLoop:
        """A new event loop running on this clock."""
        return _VirtualLoop(self)

    async def sleep_until(self, t: float) -> None:
        if t > self._t:
            # A bare loop timer rather than anyio.sleep: this is the simulation's hot path,
            # and anyio's cancel scopes still cancel it (they cancel the waiting task).
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            handle = loop.call_at(t, _wake, fut)
            try:
                await fut
            finally:
                handle.cancel()  # a stale timer would otherwise pull virtual time to it
            # the jump to the timer can land an ulp short of t (float rounding): the
            # protocol promises now() >= t on return
            if self._t < t:
                self._t = t

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self._t + dt)

    def _advance(self, dt: float) -> None:
        self._t += dt
        self.jumped_s += dt


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


_POLL_EVERY_S = 0.005


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the real selector: never blocks while a timer is pending, jumps instead.

    Real file descriptors (anyio's signal wake-up pipe, call_soon_threadsafe) are still
    polled, so a Ctrl-C or a thread's result is seen. With no timer and nothing ready
    (timeout None) there is nothing virtual to wait for: block for real, as asyncio
    would (only outside events can wake such a loop).
    """

    def __init__(self, clock: VirtualClock) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock
        self._polled = 0.0

    def register(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj):  # type: ignore[no-untyped-def]
        return self._inner.unregister(fileobj)

    def modify(self, fileobj, events, data=None):  # type: ignore[no-untyped-def]
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout=None):  # type: ignore[no-untyped-def]
        if timeout is None:
            return self._inner.select(None)
        # Real fds only carry Ctrl-C and thread wake-ups: polling them at most every
        # few wall milliseconds saves a syscall on most of the loop's turns.
        now = time.monotonic()
        events = []
        if now - self._polled >= _POLL_EVERY_S:
            self._polled = now
            events = self._inner.select(0)
        if not events and timeout > 0:
            self._clock._advance(timeout)
        return events

    def get_key(self, fileobj):  # type: ignore[no-untyped-def]
        return self._inner.get_key(fileobj)

    def get_map(self):  # type: ignore[no-untyped-def]
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: VirtualClock) -> None:
        self._vclock = clock
        super().__init__(_VirtualSelector(clock))

    def time(self) -> float:
        return self._vclock._t
