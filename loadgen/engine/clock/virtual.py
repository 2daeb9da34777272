"""VirtualClock: virtual time for `loadgen simulate`, an event loop whose time moves only
when nothing can run (see the class docstring)."""

from __future__ import annotations

import asyncio
import heapq
import selectors
import time

from loadgen.engine.clock.protocol import NoBookkeeping
class VirtualClock(NoBookkeeping):
    """Virtual time for `loadgen simulate`: time moves only when nothing can run.

    The clock owns an asyncio event loop (`loop_factory`, for
    `anyio.run(..., backend_options={"loop_factory": clock.loop_factory})`) whose
    `time()` is scenario seconds. When the loop has no ready callback it would block
    in `select(timeout)` until its next timer; instead the selector polls without
    blocking and the clock jumps by `timeout`, straight to that timer. So every timer
    in the process is virtual: `clock.sleep_until`, `anyio.sleep`, `move_on_after` /
    `fail_after` deadlines, retry backoff. A runnable task (even one waiting on a
    semaphore another task will release) keeps time still, because the loop sees it.

    Why not driver bookkeeping as in WarpClock: counting "busy" tasks cannot tell
    a task waiting for an in-flight slot from one doing work, and in virtual time no
    real time flows to break that tie, so it would stall. The loop itself knows.
    Why not a library (aiotools.VirtualClock, looptime): both patch the private
    `loop._selector` / loop class at run time; this uses only the public
    `SelectorEventLoop(selector)` and `time()` hooks, in ~50 lines.

    `sleep_until` itself (the simulation's hot path: every arrival and every response
    waits in it) keeps its sleepers in the clock's own heap, not as loop timers: the
    selector wakes the earliest when it would jump, so a sleeper resumes in the loop
    turn time reaches it (a loop timer takes one turn to fire and another for the task),
    and costs no TimerHandle. Sleepers due at the same time wake in the order they went
    to sleep, and before loop timers due then.

    driver(), in_flight() and waiting() are no-ops here; `scale` is 1 (loop seconds are scenario
    seconds). One clock drives one event loop (one run).
    """

    kind = "virtual"
    scale = 1.0

    def __init__(self) -> None:
        self._t = 0.0
        self.jumped_s = 0.0  # scenario seconds skipped while nothing was runnable
        # sleep_until's sleepers: (wake time, sequence number, future), earliest first; a
        # cancelled sleeper's future is done and its entry dropped when it reaches the top
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = 0

    def now(self) -> float:
        return self._t

    def start(self) -> None:
        pass  # virtual time only moves when the run makes it: nothing to re-zero

    def loop_factory(self) -> asyncio.AbstractEventLoop:
        """A new event loop running on this clock."""
        return _VirtualLoop(self)

    async def sleep_until(self, t: float) -> None:
        if t > self._t:
            # A bare future rather than anyio.sleep: anyio's cancel scopes still cancel it
            # (they cancel the waiting task, which cancels the future it awaits).
            fut = asyncio.get_running_loop().create_future()
            self._seq += 1
            heapq.heappush(self._sleepers, (t, self._seq, fut))
            await fut
            # woken with sleepers due within the clock resolution of the earliest (as the
            # loop pops its timers): the protocol promises now() >= t on return
            if self._t < t:
                self._t = t

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self._t + dt)

    def _advance(self, dt: float) -> None:
        self._t += dt
        self.jumped_s += dt

    def _wake_due(self) -> None:
        """Wake every sleeper due now, earliest (then first asleep) first: their tasks run
        in this loop turn. Due: within the clock resolution, as the loop treats its timers."""
        heap = self._sleepers
        end = self._t + _RESOLUTION
        while heap and heap[0][0] < end:
            fut = heapq.heappop(heap)[2]
            if not fut.done():
                fut.set_result(None)


_POLL_EVERY_S = 0.005
# the event loop pops timers due before time() + its clock resolution (that of monotonic)
_RESOLUTION = time.get_clock_info("monotonic").resolution


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
        # `timeout`: seconds to the loop's next timer (None: no timer, 0: something is
        # ready). The clock's own sleepers are timers the loop does not know about.
        clock = self._clock
        # the wake time of the clock's earliest sleeper still waiting (None: none); read
        # straight off its heap, not through a method: this runs on every loop turn
        heap = clock._sleepers
        while heap and heap[0][2].done():
            heapq.heappop(heap)  # cancelled while asleep
        wake = heap[0][0] if heap else None
        if timeout is None and wake is None:
            return self._inner.select(None)
        # Real fds only carry Ctrl-C and thread wake-ups: polling them at most every
        # few wall milliseconds saves a syscall on most of the loop's turns.
        now = time.monotonic()
        events = []
        if now - self._polled >= _POLL_EVERY_S:
            self._polled = now
            events = self._inner.select(0)
        if not events and timeout != 0:
            if wake is not None and (timeout is None or wake - clock._t <= timeout):
                if wake > clock._t:
                    clock._advance(wake - clock._t)
                    clock._t = wake  # exactly: t + (wake - t) can round off it
            else:
                clock._advance(timeout)
        if wake is not None and wake < clock._t + _RESOLUTION:
            clock._wake_due()
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
