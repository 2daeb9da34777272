"""Clocks: where scenario time comes from.

Every time loadgen records or waits for is *scenario time* in seconds since the run
started, read from a Clock. The kinds share one protocol:

  RealClock    scenario time = monotonic time since start (always for --target aws)
  WarpClock    scenario time = offset + scale x real elapsed. When every participant
               task is asleep on the clock (so no request is in flight), the clock
               jumps forward to the earliest wake-up: idle gaps cost no wall time.

Participants are the tasks that drive load (session tasks, the open-loop
dispatcher); they run inside `with clock.participant():`. A participant that is
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

    def enter(self) -> None:
        """Count a participant that is about to start (call before spawning its task)."""

    def participant(self, entered: bool = False) -> contextlib.AbstractContextManager[None]:
        """Mark the current task as one that drives load (see module doc).

        entered=True when the spawner already called enter() for this task, so no
        idle jump can happen between spawning it and its first step.
        """


class RealClock:
    kind = "real"
    scale = 1.0

    def __init__(self, monotonic=time.monotonic) -> None:
        self._mono = monotonic
        self._t0 = monotonic()

    def now(self) -> float:
        return self._mono() - self._t0

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await anyio.sleep(delay)

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)

    def enter(self) -> None:
        pass

    @contextlib.contextmanager
    def participant(self, entered: bool = False) -> Iterator[None]:
        yield


_is_participant: contextvars.ContextVar[bool] = contextvars.ContextVar("loadgen_participant", default=False)


class WarpClock:
    """Scenario time = offset + scale x real elapsed, with idle jumps (module doc)."""

    kind = "warp"

    def __init__(self, scale: float = 1.0, monotonic=time.monotonic) -> None:
        if not scale > 0:
            raise ValueError("time scale must be > 0")
        self.scale = float(scale)
        self._mono = monotonic
        self._t0 = monotonic()
        self._offset = 0.0
        self._active = 0  # participants not asleep on the clock
        self._deadlines: list[tuple[float, int]] = []  # heap of sleeping participants' wake times
        self._removed: set[int] = set()
        self._seq = itertools.count()
        self._jump_event: anyio.Event | None = None
        self.jumped_s = 0.0  # scenario seconds skipped by idle jumps

    def now(self) -> float:
        return self._offset + self.scale * (self._mono() - self._t0)

    def jump_to(self, t: float) -> None:
        """Move scenario time forward to t (never back) and wake sleepers to re-check."""
        gap = t - self.now()
        if gap <= 0:
            return
        self._offset += gap
        self.jumped_s += gap
        if self._jump_event is not None:
            self._jump_event.set()
            self._jump_event = None

    def enter(self) -> None:
        self._active += 1

    @contextlib.contextmanager
    def participant(self, entered: bool = False) -> Iterator[None]:
        token = _is_participant.set(True)
        if not entered:
            self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            _is_participant.reset(token)
            self._maybe_jump()

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
        try:
            self._maybe_jump()
            await self._wait(t)
        finally:
            self._active += 1
            self._removed.add(key)

    async def _wait(self, t: float) -> None:
        while True:
            delay = t - self.now()
            if delay <= 0:
                return
            if self._jump_event is None:
                self._jump_event = anyio.Event()
            ev = self._jump_event
            with anyio.move_on_after(delay / self.scale):
                await ev.wait()

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)
