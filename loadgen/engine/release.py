"""Requests prepared ahead of their intended start and released on time (`run`'s open loop).

On a clock that never jumps (real, or `--workers`' scaled shared clock) the runner hands
an open-loop request to the transport up to `PREPARE_AHEAD_S` before it is due. botocore
builds, serialises and signs it at once, and it waits, built, in the client's public
`before-send` event (aiobotocore awaits its handlers in the calling task) until its
intended start; then it goes to HTTP. So botocore's per-request work (~0.5 ms of CPU on
the reference machine) is done before the request is due, not after, and a burst of
Poisson arrivals finds most of its requests already built (benchmarks/bench_schedule.py
`--ahead-ms`, docs/performance.md). SigV4 signatures stay valid for minutes. A request
never reaches HTTP before its intended start, and its outcome's `start` is stamped where
it goes to HTTP (`on_release(t)` tells the runner's cache model then), so its schedule
lag and service time are measured on the wire side of botocore's building; a prepared
request that fails before reaching HTTP fails at its intended start at the earliest.
Calls not prepared ahead (closed-loop turns, retries, other clocks) pass the hook
untouched and keep the start taken as the call began. A warp clock would jump over the
hold as idle time (and scale botocore's building into latency), and the virtual clock
has no real work to move earlier: neither prepares ahead.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

import anyio.lowlevel

PREPARE_AHEAD_S = 0.02  # real seconds


def lead(clock: Any) -> float:
    """How early (scenario seconds) requests on `clock` are prepared: 0 where they are not."""
    return PREPARE_AHEAD_S * clock.scale if clock.kind in ("real", "scaled") else 0.0


@dataclass
class Release:
    """A prepared call's passage through `before-send`: the scenario time to reach HTTP at,
    the loop turns to yield after it (the arms' rotation, see Runner._arm_dispatcher), the
    outcome whose `start` is stamped there and who to tell (`on_release(start)`)."""

    at: float
    turns: int
    out: Any
    on_release: Callable[[float], None] | None = None
    sent: bool = False  # released: the request went to HTTP (or failed before, see settle)

    def release(self, t: float) -> None:
        self.out.start = t
        self.sent = True
        if self.on_release is not None:
            self.on_release(t)


_CURRENT: contextvars.ContextVar[Release | None] = contextvars.ContextVar("loadgen_release", default=None)


@contextlib.contextmanager
def releasing(r: Release | None) -> Iterator[Release | None]:
    """The body's calls pass `before-send` as `r` says (set for the calling task only;
    None: sent as they are)."""
    token = _CURRENT.set(r)
    try:
        yield r
    finally:
        _CURRENT.reset(token)


def before_send(clock: Any) -> Callable[..., Awaitable[None]]:
    """The `before-send` handler for a client on `clock`: hold the request until its time,
    yield its rotation turns, stamp its start. Returns None (botocore sends it then)."""
    async def hook(**_: Any) -> None:
        r = _CURRENT.get()
        if r is None:  # not prepared ahead (or not a `call` at all: CountTokens): sent as it is
            return
        if r.at > clock.now():
            await clock.sleep_until(r.at)
        for _ in range(r.turns):
            await anyio.lowlevel.checkpoint()
        r.release(clock.now())
    return hook


async def settle(r: Release, clock: Any) -> None:
    """After the call: one that failed before reaching HTTP fails at its intended start at
    the earliest, as it would have unprepared, so no first attempt starts before it was
    due and none ends before it started."""
    if not r.sent:
        if r.at > clock.now():
            await clock.sleep_until(r.at)
        r.release(max(r.out.start, r.at))
