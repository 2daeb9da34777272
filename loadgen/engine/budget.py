"""One `--max-requests` / `--max-cost-usd` budget for the runners of a run split into
execution segments (`loadgen run --workers N`, Ray): leases from one pool, never N budgets.

The pool (`BudgetPool`) lives with the run's coordinator: locally `SharedMemoryPool`
(numbers in shared memory under one lock, a few microseconds a call); across machines
anything with the same four methods (a Ray actor). Each runner holds a `SegmentBudget`:
its lease on the pool, taken as it needs it and given back when it no longer does.

Dollars: a runner admits a request only if what it has spent, plus the worst case of
what it has in flight, plus the new request's worst case fits in its lease; when it does
not, it asks the pool for the difference (plus `chunk_usd` to ask less often). The pool
grants only what is left, so the spend and reservations of all runners together never
pass the cap: the rule one runner applies alone (runner.py `_admit`). Freed reservations
above `chunk_usd` go back at once, so with `chunk_usd = 0` (the local default) a runner
holds no more than it has in flight and the cap binds as for one process. The first
refusal marks the pool exhausted (`max-cost`) and every runner stops, as one would.

Requests (per arm, first attempts), which are "first" is fixed by the schedule, never by
which process got there first:
- open loop: the first `max_requests` arrivals of the shared schedule, by index. One
  runner sends arrivals in index order, so under a cap it sends indexes 0..max-1; a
  segment sends the ones it owns. No pool call at all, and exactly the 1-process set.
- agent sessions: turns start when earlier turns end, so no index says which come first
  in time; each first attempt takes one from the arm's count in the pool (the same
  count one runner keeps). The count is exact (never more, and fewer only if the run
  ends first); which turns get in may differ from run to run, as it does for one process.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, Sequence

from loadgen.engine.schedule import Segment

MAX_COST = "max-cost"
MAX_REQUESTS = "max-requests"


class BudgetPool(Protocol):
    """The run's one budget (coordinator side). Called synchronously from a runner's event
    loop: each call must be quick (shared memory) or leases must be chunked (remote)."""

    def take_usd(self, need: float, want: float) -> float:
        """Grant `want` USD (>= need), or all that is left if that is at least `need`;
        else grant 0.0 and mark the pool exhausted (`max-cost`)."""

    def give_usd(self, amount: float) -> None:
        """Return `amount` USD of a lease that will not be spent."""

    def take_request(self, arm: int) -> bool:
        """One first attempt of arm number `arm` (scenario order); False when its count
        is used up (the pool is exhausted, `max-requests`, once every arm's is)."""

    def exhausted(self) -> str | None:
        """`max-cost` or `max-requests` once the pool has refused for good, else None."""


class SharedMemoryPool:
    """A BudgetPool in shared memory for the processes of one machine. Made in the parent
    with a multiprocessing context; handed to child processes as a Process argument
    (shared memory cannot travel through a pipe or queue)."""

    def __init__(self, ctx: Any, arms: int, max_requests: int | None, max_cost_usd: float | None) -> None:
        self._lock = ctx.Lock()
        # [0] USD left (inf: no cap), [1] exhausted (0 no, 1 max-cost, 2 max-requests),
        # [2 + k] first attempts left for arm k (inf: no cap)
        self._v = ctx.RawArray("d", 2 + arms)
        self._v[0] = math.inf if max_cost_usd is None else float(max_cost_usd)
        for k in range(arms):
            self._v[2 + k] = math.inf if max_requests is None else float(max_requests)
        self._arms = arms

    def take_usd(self, need: float, want: float) -> float:
        with self._lock:
            v = self._v
            left = v[0]
            if v[1] or left < need:
                if not v[1]:
                    v[1] = 1.0
                return 0.0
            got = min(max(want, need), left)
            v[0] = left - got
            return got

    def give_usd(self, amount: float) -> None:
        if amount > 0:
            with self._lock:
                self._v[0] += amount

    def take_request(self, arm: int) -> bool:
        with self._lock:
            v = self._v
            if v[1] == 1.0 or v[2 + arm] < 1:
                return False
            v[2 + arm] -= 1
            if all(v[2 + k] < 1 for k in range(self._arms)):
                v[1] = 2.0
            return True

    def exhausted(self) -> str | None:
        return {0.0: None, 1.0: MAX_COST, 2.0: MAX_REQUESTS}[self._v[1]]

    def usd_left(self) -> float:
        return self._v[0]


class SegmentBudget:
    """One runner's lease on the run's BudgetPool (the runner's `budget=`).

    `open_loop`: the scenario has `[arrivals]` (requests are capped by index, see the
    module doc). `chunk_usd`: USD a runner may keep beyond what it has in flight, so a
    remote pool is asked less often (0: give back at once).
    """

    def __init__(self, pool: BudgetPool, segment: Segment, arm_names: Sequence[str], *,
                 max_requests: int | None, max_cost_usd: float | None, open_loop: bool,
                 chunk_usd: float = 0.0) -> None:
        self.pool, self.segment = pool, segment
        self._arm_index = {name: k for k, name in enumerate(arm_names)}
        self.max_requests, self.max_cost_usd = max_requests, max_cost_usd
        self.open_loop = open_loop
        self.chunk_usd = max(0.0, chunk_usd)
        self.leased_usd = 0.0   # USD granted to this runner and not given back

    def first_attempt(self, arm: str, index: int) -> tuple[bool, bool]:
        """(may the first attempt of request `index` of `arm` be sent, is the arm done after
        it: no later request of this segment may be)."""
        cap = self.max_requests
        if cap is None:
            return True, False
        if self.open_loop:
            return index < cap, index + self.segment.count >= cap
        return self.pool.take_request(self._arm_index[arm]), False

    def cover(self, in_use_usd: float) -> bool:
        """Whether this runner's spend plus reservations, `in_use_usd`, fits its lease,
        growing the lease from the pool when it does not. False: the cap is reached."""
        if self.max_cost_usd is None or in_use_usd <= self.leased_usd:
            return True
        need = in_use_usd - self.leased_usd
        got = self.pool.take_usd(need, need + self.chunk_usd)
        if got < need:
            return False
        self.leased_usd += got
        return True

    def settle(self, in_use_usd: float) -> None:
        """A reservation was released: give back what the lease holds beyond `in_use_usd`
        plus `chunk_usd`."""
        if self.max_cost_usd is None:
            return
        spare = self.leased_usd - in_use_usd - self.chunk_usd
        if spare > 1e-12:
            self.leased_usd -= spare
            self.pool.give_usd(spare)

    def close(self, spent_usd: float) -> None:
        """The runner is done: give back all it did not spend."""
        if self.max_cost_usd is not None and self.leased_usd > spent_usd:
            self.pool.give_usd(self.leased_usd - spent_usd)
            self.leased_usd = spent_usd

    def exhausted(self) -> str | None:
        return self.pool.exhausted()
