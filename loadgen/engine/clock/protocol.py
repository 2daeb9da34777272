"""What every clock does (the `Clock` protocol), and the no-op bookkeeping of the clocks
that keep none (real: it never jumps; virtual: its event loop sees what is runnable)."""

from __future__ import annotations

import contextlib
from typing import Protocol


class Driver(Protocol):
    """A task that drives load, counted by its clock from the moment it is made
    (`Clock.driver()`, called by the spawner) and entered once inside the task (`with`)."""

    def __enter__(self) -> None: ...

    def __exit__(self, *exc: object) -> None: ...


class Clock(Protocol):
    kind: str   # real | warp | virtual
    scale: float  # scenario seconds per real second while time flows

    def now(self) -> float:
        """Scenario seconds since the run started."""

    async def sleep_until(self, t: float) -> None:
        """Return once now() >= t (scenario seconds)."""

    async def sleep(self, dt: float) -> None:
        """Sleep dt scenario seconds."""

    def start(self) -> None:
        """Re-zero scenario time: called when the runner starts, so set-up (client creation,
        emulator start) does not make the first requests look late."""

    def driver(self) -> Driver:
        """A new load-driving task: call before spawning it (so no idle jump can happen
        between spawning it and its first step), enter it inside the task."""

    def in_flight(self) -> contextlib.AbstractContextManager[None]:
        """Mark the body as one request on the wire (the transport wraps each call)."""

    def waiting(self) -> contextlib.AbstractContextManager[None]:
        """Mark the body as the current driver waiting for something only requests in
        flight can free (an in-flight slot)."""


class _Noop:
    """A reusable context manager that does nothing (one for every no-op mark)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP = _Noop()


class NoBookkeeping:
    """Driver, in-flight and waiting marks for clocks that need none of them."""

    def driver(self) -> Driver:
        return _NOOP

    def in_flight(self) -> contextlib.AbstractContextManager[None]:
        return _NOOP

    def waiting(self) -> contextlib.AbstractContextManager[None]:
        return _NOOP
