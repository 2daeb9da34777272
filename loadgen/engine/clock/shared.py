"""SharedClock: scenario time = scale x (now - one start instant every process agrees on).

`loadgen run --workers N` drives one emulator from several processes (and, on Ray, from
several machines). Their records and the emulator's cache TTLs, quota windows and
modelled latencies must all live on one time line, so every process reads the same
clock: scenario second 0 is one agreed instant, and time flows at `scale` from there.

Unlike WarpClock there are no idle jumps and no holding still: a jump is a decision
made from the state of one process's requests, and processes cannot agree on one
without a round trip per decision. So an idle gap costs its wall time (gap / scale),
and the header says the clock is `scaled` (scale != 1) or `real` (scale 1).

The start instant is a Unix time (seconds since the epoch) so machines can share it;
each process turns it into its own monotonic time once (`time.time()` and
`time.monotonic()` read together), and from then on reads only the monotonic clock.
On one machine all processes read the same monotonic clock, so they agree to within
the microseconds between those two reads; across machines, to within their NTP offset.

The instant may be unknown when the clock is made: `anchor` is then a callable that
returns it once known (None before). Until then now() is 0.0 and a sleep waits for it
(the emulator process serves nothing before the workers start at the instant).
`start()` does nothing: the instant is shared, no process may re-zero it.
"""

from __future__ import annotations

import time
from typing import Callable

import anyio

from loadgen.engine.clock.protocol import NoBookkeeping
from loadgen.engine.clock.real import sleep_while_left

# Real seconds between looks at an anchor that is not known yet.
_ANCHOR_POLL_S = 0.005


class SharedClock(NoBookkeeping):
    """Scenario time anchored on one shared start instant (Unix seconds), flowing at `scale`."""

    def __init__(self, scale: float, anchor: float | Callable[[], float | None], *,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        if not scale > 0:
            raise ValueError("time scale must be > 0")
        self.scale = float(scale)
        self.kind = "real" if self.scale == 1.0 else "scaled"
        self._mono, self._wall = monotonic, wall
        self._anchor_fn = anchor if callable(anchor) else None
        self._t0: float | None = None   # the start instant on this process's monotonic clock
        if not callable(anchor):
            self._fix(float(anchor))

    def _fix(self, anchor_wall: float) -> None:
        self._t0 = self._mono() - (self._wall() - anchor_wall)

    def _origin(self) -> float | None:
        if self._t0 is None and self._anchor_fn is not None:
            a = self._anchor_fn()
            if a is not None:
                self._fix(float(a))
        return self._t0

    @property
    def anchored(self) -> bool:
        """Whether the start instant is known."""
        return self._origin() is not None

    def now(self) -> float:
        t0 = self._t0 if self._t0 is not None else self._origin()
        if t0 is None:
            return 0.0
        return self.scale * (self._mono() - t0)

    def start(self) -> None:
        pass  # the start instant is shared: no process may re-zero it

    async def sleep_until(self, t: float) -> None:
        while self._origin() is None:
            await anyio.sleep(_ANCHOR_POLL_S)
        # the event loop may fire a timer up to a millisecond early (uvloop): the protocol
        # promises now() >= t on return; never a timer under one tick (see RealClock)
        await sleep_while_left(lambda: (t - self.now()) / self.scale)

    async def sleep(self, dt: float) -> None:
        await self.sleep_until(self.now() + dt)
