"""RealClock: scenario time is monotonic time since the run started (always for --target aws)."""

from __future__ import annotations

import time
from typing import Callable

import anyio

from loadgen.engine.clock.protocol import NoBookkeeping

# The shortest timer a sleep asks the event loop for (seconds): one tick of its clock.
MIN_TIMER_S = 0.001


async def sleep_while_left(left: Callable[[], float]) -> None:
    """Sleep until `left()` (real seconds still to wait) is <= 0, asking the event loop for
    at least MIN_TIMER_S each time (see RealClock.sleep_until for why)."""
    while (delay := left()) > 0:
        await anyio.sleep(delay if delay > MIN_TIMER_S else MIN_TIMER_S)


class RealClock(NoBookkeeping):
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
        # The protocol promises now() >= t on return, and event loops keep time in whole
        # milliseconds: asyncio's epoll waits at least 1 ms for any delay, and uvloop's
        # timers may fire up to a millisecond early, while a delay it rounds to 0 ms runs
        # on the next loop turn. So sleep again for what is left, never for less than
        # MIN_TIMER_S: a remainder under half a millisecond would otherwise spin the loop
        # (one turn after another) until its time, costing CPU the requests need.
        await sleep_while_left(lambda: t - self.now())

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)
