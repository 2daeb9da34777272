"""RealClock: scenario time is monotonic time since the run started (always for --target aws)."""

from __future__ import annotations

import time

import anyio

from loadgen.engine.clock.protocol import NoBookkeeping


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
        delay = t - self.now()
        if delay > 0:
            await anyio.sleep(delay)

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)
