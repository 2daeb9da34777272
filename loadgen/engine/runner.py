"""Drives a scenario's traffic on a clock and records every attempt.

Open loop (`[arrivals]`): one dispatcher per arm sleeps until each intended start
of the shared schedule and launches that arm's request; it never waits for
responses, so a slow target cannot slow the schedule down. Closed loop
(`[sessions]`): each session (one task per arm) sends a turn, waits for it to
finish, sleeps a think-time gap and sends the next; the next turn's intended start
is the previous end plus the gap.

Every request knows its intended start; latency is measured from it (no
coordinated omission). A bound on in-flight requests makes excess requests wait
for a slot; their wait shows up as schedule lag, never as a dropped request.

Retries follow the scenario's policy and each attempt is its own record; a retry
keeps the request's original intended start, so the final attempt's end-to-end
latency is what the caller experienced, backoff included.

Arms get identical treatment, so a difference between them is the arm's doing:
each arm has its own `max_in_flight` slots and (open loop) its own dispatcher, so
one arm's backlog never delays another's; and where arms start a request at the
same moment (one arrival, one session start), the arm that goes first rotates
from one arrival to the next. (One shared bound taken in arm order gave the first
arm a head start: two identical arms at max_in_flight = 3 had e2e p50 4.34 s vs
5.06 s in `simulate`.)

An exception from the transport that is not a cancellation is the attempt's
outcome (status error, the exception's class as error code) and the run goes on; a
`TargetError` (the target cannot be used at all) is recorded too, stops dispatch,
and is kept in `target_error` for the caller (exit 3). Only a real cancellation is
recorded as `Interrupted`.

A runner may send only one execution segment of the schedule (`schedule.Segment`: whole
sessions, a stripe of the arrivals); nothing here assumes it sees every session. Runners
of several segments against one target share the cache model of the shared system prefix
(`expectations`), so each predicts what the whole run predicts.

The runner does not price, format or store anything: `sink(attempt, cost_buckets)`
receives every attempt, `pricer(model_id, usage, cache_ttl[, service_tier])` prices it (the tier only when the
arm sets one).

(Over 400 lines: the dispatchers, the session loop and the attempt loop share the limits,
slots, worker pool and cancel scopes kept here; split, that state would be passed around.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import anyio
import anyio.lowlevel

from loadgen.engine import schedule
from loadgen.engine.batch_arm import BatchArm, BatchSetup
from loadgen.engine.budget import MAX_REQUESTS, SegmentBudget
from loadgen.engine.clock import Clock, Driver
from loadgen.engine.expectations import CacheExpectations, Prediction
from loadgen.engine.record import ON_DEMAND, Attempt, attempt_from, observed_cache_state
from loadgen.scenario import Arm, Scenario
from loadgen.engine.transport import Outcome, TargetError, Transport
from loadgen.engine.workload import AgentSession, ArmWorkload, Request

Pricer = Callable[..., Mapping[str, float]]   # (model_id, usage, cache_ttl[, service_tier])
Sink = Callable[[Attempt, Mapping[str, float]], None]

ZERO_COST = {"input": 0.0, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0, "total": 0.0}

# A task behind its schedule starts overdue requests back to back, yielding to the event
# loop once every this many, so the requests already launched still run. Yielding on every
# one made a saturated dispatcher start exactly one request per loop turn (~1 epoll and
# one loop turn per request, where a bare aiobotocore loop serves ~30 per turn).
OVERDUE_YIELD_EVERY = 16

_log = logging.getLogger(__name__)  # -v / --log-level (commands/logs.py): stops at info, retries at debug


@dataclass(frozen=True)
class Limits:
    max_requests: int | None = None    # first attempts per arm (arms stay comparable)
    max_cost_usd: float | None = None  # stop dispatch before the bill could cross this
    grace_s: float = 5.0               # wall seconds in-flight requests get after an interrupt


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        transport: Transport,
        clock: Clock,
        *,
        sink: Sink,
        pricer: Pricer,
        limits: Limits = Limits(),
        salt: str = "",
        wall_clock: Callable[[], float] = time.time,
        prefix_sizes: Mapping[str, Any] | None = None,
        segment: schedule.Segment = schedule.WHOLE,
        expectations: Mapping[str, CacheExpectations] | None = None,
        batch: BatchSetup | None = None,
        budget: SegmentBudget | None = None,
    ) -> None:
        """`segment`: the share of the schedule this runner sends (whole sessions, its
        stripe of the arrivals); the default is all of it. `expectations`: per arm, the
        client-side cache model, when several runners share one: the system prefix is one
        cache entry for every session of an arm, so runners of different segments of one
        run against one target must share it to predict what the full run predicts. The
        rest of the model is per session, and a segment holds whole sessions. `budget`: this
        segment's lease on the limits of a run split over processes (engine/budget.py):
        `limits` then says which limits are set, and the budget holds them."""
        self.scenario = scenario
        self.transport = transport
        self.clock = clock
        self.sink = sink
        self.pricer = pricer
        self.limits = limits
        self.wall = wall_clock
        # on-demand arms go through the dispatchers below; batch arms through batch_arm.BatchArm
        self.arms = tuple(a for a in scenario.arms if getattr(a, "mode", "on_demand") != "batch")
        self.batch_arms = tuple(a for a in scenario.arms if getattr(a, "mode", "on_demand") == "batch")
        if self.batch_arms and (batch is None or scenario.sessions is not None):
            raise ValueError("batch arms need an [arrivals] scenario and a batch setup (clients, bucket, role)")
        self.batch = batch
        # prefix_sizes: arm name -> workload.PrefixSize measured with the target's CountTokens
        self.workloads = {a.name: ArmWorkload(scenario, a, salt=salt, size=(prefix_sizes or {}).get(a.name))
                          for a in scenario.arms}
        self.segment = segment
        self.budget = budget
        self._arms_done: set[str] = set()  # arms with no first attempt left (leased limits)
        self.expect = dict(expectations) if expectations is not None else {
            a.name: CacheExpectations(self.workloads[a.name].info.cache_min_tokens) for a in self.arms}
        # live state, read by the progress display
        self.in_flight = 0
        self.dispatched = 0          # first attempts started, all arms
        self._dispatched_by_arm = {a.name: 0 for a in scenario.arms}
        self.cost_usd = 0.0
        self.stop_reason: str | None = None
        self.target_error: TargetError | None = None  # the target failed: the caller exits 3
        self._reserved_cost = 0.0    # worst-case cost of requests admitted and not finished
        self._sleepers: set[anyio.CancelScope] = set()
        self._overdue = 0            # overdue starts since a task last waited (see _sleep_until)
        self._slots: dict[str, anyio.Semaphore] = {}  # per arm: `max_in_flight` each
        self._dispatching = 0        # open-loop arm dispatchers still running
        self._tg: Any = None
        # open loop: request workers waiting for their next request (see _hand_off)
        self._idle: list[asyncio.Future[Any]] = []
        self._pool_closed = False
        # open loop: how early (scenario s) a request is prepared and handed to a transport
        # that can hold it until its intended start (engine/release.py)
        self._ahead = float(getattr(transport, "prepare_ahead", 0.0) or 0.0)

    # -- control ---------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Stop dispatching new requests; in-flight ones finish."""
        if self.stop_reason is None:
            self.stop_reason = reason
            _log.info("dispatch stopped: %s (in-flight requests finish)", reason)
        for cs in list(self._sleepers):
            cs.cancel()

    def abort(self) -> None:
        """Cancel everything now (in-flight attempts are recorded as interrupted)."""
        self.stop(self.stop_reason or "interrupted")
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _sleep_until(self, t: float, scoped: bool = True) -> bool:
        """Sleep on the clock until t; False if the run is stopping. `scoped=False`: the
        caller already runs in a cancel scope in `_sleepers` (stop() ends the sleep by
        cancelling it), which saves a scope per sleep on the open loop's hot path."""
        if self.stopping:
            return False
        if t <= self.clock.now():
            # behind schedule: still let the requests already launched run now and then,
            # so a saturated dispatcher cannot starve them (OVERDUE_YIELD_EVERY)
            self._overdue += 1
            if self._overdue >= OVERDUE_YIELD_EVERY:
                self._overdue = 0
                await anyio.lowlevel.checkpoint()
            return not self.stopping
        if scoped:
            with anyio.CancelScope() as cs:
                self._sleepers.add(cs)
                try:
                    await self.clock.sleep_until(t)
                finally:
                    self._sleepers.discard(cs)
        else:
            await self.clock.sleep_until(t)
        self._overdue = 0
        return not self.stopping

    async def _take_slot(self, slots: anyio.Semaphore) -> None:
        """Take one of an arm's in-flight slots; wait (FIFO) only when none is free.

        anyio's `Semaphore.acquire` yields to the event loop even when a slot is free
        (a shielded cancel scope and one more loop turn per request); a free slot needs
        no wait, and the run's next await is a cancellation point anyway.
        """
        try:
            slots.acquire_nowait()
        except anyio.WouldBlock:
            with self.clock.waiting():  # only requests in flight can free one: time flows for them
                await slots.acquire()
            self._overdue = 0  # it waited: the requests in flight ran meanwhile

    # -- main ------------------------------------------------------------------

    async def run(self) -> None:
        """Run the scenario to its end (or a stop). After a target failure `target_error`
        is set; the attempts made so far are all recorded."""
        self.clock.start()  # scenario time 0 is now, not when the client or emulator was set up
        bound = max(1, self.scenario.target.max_in_flight)
        self._slots = {a.name: anyio.Semaphore(bound) for a in self.arms}
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if self.scenario.sessions is not None:
                self._spawn(tg, self._session_dispatcher, tg)
            else:
                self._dispatching = len(self.arms)
                for k, arm in enumerate(self.arms):
                    self._spawn(tg, self._arm_dispatcher, tg, arm, k)
                for arm in self.batch_arms:
                    assert self.batch is not None
                    self._spawn(tg, BatchArm(self, arm, self.batch).run, tg)
        self._tg = None
        if self.budget is not None:
            self.budget.close(self.cost_usd)

    def _hand_off(self, tg: Any, arm: Arm, req: Request, intended: float, turns: int | None) -> None:
        """Start one open-loop request (its in-flight slot already taken) on an idle worker,
        or on a new worker when none is idle.

        A task per request costs anyio a task, a cancel scope and an event, and asyncio a
        done callback; the workers are reused, so there are at most `max_in_flight` x arms
        of them (a worker holds a slot while busy). The request starts on the next loop
        turn either way, in hand-off order, so the schedule of events is unchanged.
        Raw asyncio futures: loadgen runs on anyio's asyncio backend only (aiobotocore,
        VirtualClock), and anyio's cancel scopes cancel a task waiting on one.
        """
        job = (self.clock.driver(), arm, req, intended, turns)  # counted now: see _spawn
        idle = self._idle
        while idle:
            fut = idle.pop()
            if not fut.done():  # a worker cancelled while idle (abort) leaves a done future
                fut.set_result(job)
                return
        tg.start_soon(self._worker, job)

    async def _worker(self, job: tuple[Driver, Arm, Request, float, int | None] | None) -> None:
        loop = asyncio.get_running_loop()
        while job is not None:
            driver, arm, req, intended, turns = job
            with driver:
                await self._send(arm, req, intended, True, turns)
            if self._pool_closed:
                return
            fut: asyncio.Future[Any] = loop.create_future()
            self._idle.append(fut)
            job = await fut

    def _close_pool(self) -> None:
        """No more open-loop requests: idle workers return, busy ones after their request."""
        self._pool_closed = True
        for fut in self._idle:
            if not fut.done():
                fut.set_result(None)
        self._idle.clear()

    def _spawn(self, tg: Any, fn: Callable[..., Any], *args: Any) -> None:
        """Start a task that drives load. Its clock driver is made here, before the task
        starts, so a warp clock cannot jump over the gap between spawning and its first step."""
        tg.start_soon(self._drive, self.clock.driver(), fn, *args)

    @staticmethod
    async def _drive(driver: Driver, fn: Callable[..., Any], *args: Any) -> None:
        with driver:
            await fn(*args)

    async def _arm_dispatcher(self, tg: Any, arm: Arm, k: int) -> None:
        """Arm number `k`'s open loop: its requests of the shared schedule, on its own slots.

        Each arm draws the schedule itself (the same seeds give every arm the same
        arrivals and sizes), so an arm whose slots are full falls behind alone, with
        nothing buffered for it. Arms due at the same moment wake in the same loop turn;
        at arrival i the arm k goes after (k - i) mod n others: each of those takes one
        loop turn more before it starts (its request then starts a turn after theirs),
        so the arm that goes first rotates and none is served first systematically
        (which matters when they share a quota). Behind schedule there is no tie to break.

        With a transport that holds prepared requests (`prepare_ahead` > 0: real and
        scaled clocks over HTTP), the dispatcher wakes that much before each arrival,
        builds the request and hands it over with its intended start and rotation turns;
        the transport sends it then (botocore's building and signing are done by then,
        so a burst of arrivals does not queue behind them). Its in-flight slot is taken
        from the moment it is prepared.
        """
        n = len(self.arms)
        workload = self.workloads[arm.name]
        slots = self._slots[arm.name]
        ahead = self._ahead
        try:
            # stop() cancels this scope: it ends the dispatcher wherever it waits (for the
            # next arrival, a loop turn or a slot); nothing is dispatched after a stop (a
            # request already prepared ahead still goes out at its time: it was admitted)
            with anyio.CancelScope() as cs:
                self._sleepers.add(cs)
                try:
                    for i, offset, sizes in schedule.open_loop(self.scenario, self.segment):
                        on_time = offset > self.clock.now()
                        if not await self._sleep_until(offset - ahead, scoped=False):
                            break
                        turns = (k - i) % n if on_time else 0
                        if not ahead:
                            for _ in range(turns):
                                await anyio.lowlevel.checkpoint()
                        # Take the in-flight slot before building the request: a saturated arm
                        # then holds its own dispatcher back (the wait is still recorded as
                        # schedule lag) instead of piling up one waiting request per arrival,
                        # and the cost limit is checked with what is known just before sending.
                        await self._take_slot(slots)
                        req = workload.single(i, sizes)
                        if not self._admit(req):
                            slots.release()
                            break
                        self._hand_off(tg, arm, req, offset, turns if ahead else None)
                finally:
                    self._sleepers.discard(cs)
        finally:
            self._dispatching -= 1
            if self._dispatching == 0:
                self._close_pool()

    async def _session_dispatcher(self, tg: Any) -> None:
        n = len(self.arms)
        for i, start in schedule.sessions(self.scenario, self.segment):
            if not await self._sleep_until(start):
                break
            # rotate which arm's session starts first (see _arm_dispatcher)
            for r in range(n):
                self._spawn(tg, self._session, self.arms[(i + r) % n], i, start)

    async def _session(self, arm: Arm, index: int, start: float) -> None:
        draws = schedule.SessionDraws(self.scenario, index)  # the same draws for every arm
        session = AgentSession(self.workloads[arm.name], index)
        intended = start
        try:
            for _ in range(draws.turns):
                if intended >= self.scenario.duration or not await self._sleep_until(intended):
                    break
                req = session.next_request(draws.sizes())
                if not self._admit(req):
                    break
                out = await self._send(arm, req, intended)
                session.complete(out.status == "ok", out.text)
                intended = self.clock.now() + draws.think_time()
        finally:
            self.expect[arm.name].forget_session(("session", arm.name, index))

    # -- one request, all its attempts ------------------------------------------

    def _worst_cost(self, req: Request) -> float:
        usage = {"inputTokens": 0, "cacheWriteInputTokens": req.input_tokens, "outputTokens": req.max_tokens}
        arm = self.workloads[req.arm].arm
        if getattr(arm, "mode", "on_demand") == "batch":  # stacked: a 1h write costs more than plain input
            return float(self.pricer(req.model_id, usage, "1h", batch="stacked")["total"])
        return float(self._price(req.model_id, usage, "1h", arm.service_tier)["total"])

    def _price(self, model_id: str, usage: Mapping[str, Any], ttl: str, tier: str | None) -> Mapping[str, float]:
        # the tier is passed only when the arm sets one, so a three-argument pricer (the
        # default tier only) keeps working
        return self.pricer(model_id, usage, ttl, tier) if tier else self.pricer(model_id, usage, ttl)

    def _admit(self, req: Request) -> bool:
        """Count a new request against the run's limits; False when over.

        `max_requests` is per arm, so every arm gets the same first N requests of the
        shared schedule; the run stops once every arm has had its N. The cost limit is
        for the whole run and stops it at once. An admitted request reserves its worst
        case cost at once (released when its last attempt is booked), so requests
        admitted together cannot each count on the same headroom.
        """
        lim = self.limits
        if self.stopping:
            return False
        if self.budget is not None:
            return self._admit_leased(req)
        by_arm = self._dispatched_by_arm
        if lim.max_requests is not None and by_arm[req.arm] >= lim.max_requests:
            if all(n >= lim.max_requests for n in by_arm.values()):
                self.stop("max-requests")
            return False
        if lim.max_cost_usd is not None:
            worst = self._worst_cost(req)
            if self.cost_usd + self._reserved_cost + worst > lim.max_cost_usd:
                self.stop("max-cost")
                return False
            self._reserved_cost += worst
        by_arm[req.arm] += 1
        self.dispatched += 1
        if lim.max_requests is not None and all(n >= lim.max_requests for n in by_arm.values()):
            self.stop("max-requests")  # nothing more to send; in-flight requests finish
        return True

    def _admit_leased(self, req: Request) -> bool:
        """`_admit` for one segment of a run split over processes: the same rules, on the
        run's one budget (engine/budget.py), so the segments together admit what one
        runner would."""
        b = self.budget
        assert b is not None
        ok, last = b.first_attempt(req.arm, req.session)
        if not ok:
            self._arms_done.add(req.arm)
            if len(self._arms_done) >= len(self.arms):
                self.stop(MAX_REQUESTS)
            return False
        if self.limits.max_cost_usd is not None:
            worst = self._worst_cost(req)
            if not b.cover(self.cost_usd + self._reserved_cost + worst):
                self.stop("max-cost")
                return False
            self._reserved_cost += worst
        self._dispatched_by_arm[req.arm] += 1
        self.dispatched += 1
        if last:
            self._arms_done.add(req.arm)
            if len(self._arms_done) >= len(self.arms):
                self.stop(MAX_REQUESTS)  # nothing more to send; in-flight requests finish
        return True

    def _uncount(self, req: Request) -> None:
        """Take back the admission of a prepared request that never reached HTTP (aborted
        while held until its intended start)."""
        self._dispatched_by_arm[req.arm] -= 1
        self.dispatched -= 1

    def _within_cap(self, in_use_usd: float) -> bool:
        """Whether spend plus reservations fit the cost cap (this runner's lease of it)."""
        if self.budget is not None:
            return self.budget.cover(in_use_usd)
        return in_use_usd <= self.limits.max_cost_usd  # type: ignore[operator]

    async def _send(self, arm: Arm, req: Request, intended: float, holding_slot: bool = False,
                    turns: int | None = None) -> Outcome:
        """One admitted request, all its attempts; then its cost reservation is released."""
        worst = self._worst_cost(req) if self.limits.max_cost_usd is not None else 0.0
        try:
            return await self._request(arm, req, intended, holding_slot, turns)
        finally:
            self._reserved_cost -= worst  # reserved by _admit
            if self.budget is not None:
                self.budget.settle(self.cost_usd + self._reserved_cost)

    async def _request(self, arm: Arm, req: Request, intended: float, holding_slot: bool = False,
                       turns: int | None = None) -> Outcome:
        """All attempts of one request. `holding_slot`: the caller already acquired the
        arm's in-flight slot for the first attempt (it is released here). `turns` (not
        None): the request was prepared ahead; the transport sends its first attempt at
        `intended`, this many loop turns later (see _arm_dispatcher)."""
        sc = self.scenario
        policy = sc.retry
        rng: random.Random | None = None  # for retry jitter; built only if a retry happens
        expect = self.expect[arm.name]
        slots = self._slots[arm.name]
        cap = self.limits.max_cost_usd
        attempt = 1
        while True:
            if not holding_slot:
                await self._take_slot(slots)
            holding_slot = False
            try:
                now = self.clock.now()
                self.in_flight += 1
                wall_now = self.wall()
                prepared = turns is not None and attempt == 1
                if prepared:
                    # the cache model sees it as it goes to HTTP, not when it was prepared
                    view = _AtRelease(expect, req.checkpoints)
                else:
                    view = None
                    pred = expect.predict(req.checkpoints, now)
                    write = expect.sent(req.checkpoints, now)
                # the attempt's name, the same in every arm: an emulator draws its latency and
                # faults from it, so arms differ by what they do, not by arrival order
                key = f"{req.session}:{req.turn}:{attempt}"
                try:
                    if view is not None:
                        out = await self.transport.call(req.params, stream=req.stream, timeout=sc.target.request_timeout,
                                                        on_first_token=view.began, release_at=intended,
                                                        after_turns=turns, on_release=view, draw_key=key)
                    else:
                        out = await self.transport.call(req.params, stream=req.stream, timeout=sc.target.request_timeout,
                                                        on_first_token=write.began, draw_key=key)
                except Exception as e:
                    # not a cancellation: the transport failed this attempt, which is its outcome
                    t = self.clock.now()
                    # (a prepared one that failed before its release fails now)
                    start = now if view is None else t if view.write is None else view.at
                    out = Outcome(status="error", start=start, end=t, error_code=type(e).__name__,
                                  message=(str(e) or type(e).__name__)[:300])
                    if isinstance(e, TargetError):
                        self.target_error = self.target_error or e
                        self.stop("target-failed")
                except BaseException:
                    # cancelled (Ctrl-C past the grace period)
                    t = self.clock.now()
                    if view is not None and view.write is None:
                        # still held: it never reached HTTP and would not exist unprepared
                        self._uncount(req)
                        raise
                    # one attempt on the wire to account for
                    start = view.at if view is not None else now
                    self._record(arm, req, intended, attempt, view.pred if view is not None else pred,
                                 wall_now + (start - now) / self.clock.scale,
                                 Outcome(status="error", start=start, end=t, error_code="Interrupted",
                                         message="cancelled when the run was interrupted"))
                    raise
                finally:
                    self.in_flight -= 1
            finally:
                slots.release()
            if view is not None:
                if view.write is None:  # failed inside the transport before its release
                    view(out.start)
                pred, write = view.pred, view.write  # type: ignore[assignment]
            # wall time of the start the transport stamped
            wall_start = wall_now + (out.start - now) / self.clock.scale
            pred = write.finished(out.status, out.end, pred)
            self._record(arm, req, intended, attempt, pred, wall_start, out)
            kind = out.retryable_kind
            if (
                kind is None or policy.policy == "off" or kind not in policy.on
                or attempt >= policy.max_attempts or self.stopping
            ):
                return out
            # this request's reservation still stands for the next attempt; what the
            # failed one cost is booked, so the next may not fit any more
            if cap is not None and not self._within_cap(self.cost_usd + self._reserved_cost):
                self.stop("max-cost")
                return out
            if rng is None:
                rng = random.Random(f"{sc.seed}:retry:{arm.name}:{req.session}:{req.turn}")
            wait = backoff(policy, attempt, rng)
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("%s session %s turn %s: attempt %d %s (%s); retry in %.3f s", arm.name, req.session,
                           req.turn, attempt, out.status, out.error_code or "-", wait)
            if not await self._sleep_until(self.clock.now() + wait):
                return out
            attempt += 1

    def _record(self, arm: Arm, req: Request, intended: float, attempt: int, pred: Prediction,
                wall_start: float, out: Outcome) -> None:
        u = out.usage or {}
        ok = out.status == "ok"
        estimated = not ok and out.first_token is not None
        if estimated:
            # the response had begun, so the prompt was processed (and cached) and output
            # delivered, but no usage came: bill loadgen's own figures (docs/emulator.md)
            u = self.expect[arm.name].usage_estimate(req.checkpoints, req.input_tokens, pred.read)
            u["outputTokens"] = out.delivered_tokens
        get = u.get
        read = int(get("cacheReadInputTokens") or 0)
        write = int(get("cacheWriteInputTokens") or 0)
        details = get("cacheDetails")  # absent when nothing was written: no dict then
        by_ttl = {d.get("ttl"): int(d.get("inputTokens") or 0) for d in details} if details else {}
        costs = self._price(req.model_id, u, arm.cache_ttl, arm.service_tier) if (ok or estimated) and u else ZERO_COST
        cost = costs["total"]
        self.cost_usd += cost
        # every field of Attempt in declaration order, as one dict (record.attempt_from:
        # this runs once per attempt, and a keyword call of ~30 fields costs more)
        a = attempt_from({
            "arm": arm.name, "session": req.session, "turn": req.turn, "attempt": attempt,
            "intended": intended, "start": out.start, "first_token": out.first_token, "end": out.end,
            "status": out.status, "error_code": out.error_code, "model_id": req.model_id,
            "profile": arm.profile, "region": out.region, "input_tokens": int(get("inputTokens") or 0),
            "output_tokens": int(get("outputTokens") or 0), "cache_read": read, "cache_write": write,
            "cache_write_5m": by_ttl.get("5m", 0), "cache_write_1h": by_ttl.get("1h", 0),
            "cache_state": observed_cache_state(read, write, pred.expected_read) if ok else "none",
            "cache_predicted": pred.state, "cache_race": pred.race, "gap_s": pred.gap_s, "cost_usd": cost,
            "usage_estimated": estimated, "wall_start": wall_start, "request_id": out.request_id,
            "stop_reason": out.stop_reason, "message": out.message, "quota": out.quota, **ON_DEMAND,
        })
        self.sink(a, costs)
        if not ok and _log.isEnabledFor(logging.DEBUG):
            _log.debug("%s session %s turn %s attempt %d: %s %s at %.3f s: %s", arm.name, req.session, req.turn,
                       attempt, out.status, out.error_code or "-", out.end, (out.message or "")[:200])


class _AtRelease:
    """The cache model's view of a request prepared ahead (engine/release.py), taken when
    the transport releases it to HTTP (`__call__(t)`): predicted then, its writes counted
    from then, so responses that began while it was held are seen."""

    __slots__ = ("expect", "checkpoints", "at", "pred", "write")

    def __init__(self, expect: CacheExpectations, checkpoints: Any) -> None:
        self.expect, self.checkpoints = expect, checkpoints
        self.at = 0.0
        self.pred: Prediction | None = None
        self.write: Any = None

    def __call__(self, t: float) -> None:
        self.at = t
        self.pred = self.expect.predict(self.checkpoints, t)
        self.write = self.expect.sent(self.checkpoints, t)

    def began(self, t: float) -> None:
        if self.write is not None:
            self.write.began(t)


def backoff(policy: Any, attempt: int, rng: random.Random) -> float:
    """Seconds to wait before attempt `attempt + 1` under the scenario's retry policy."""
    if policy.policy == "fixed":
        return policy.base
    delay = min(policy.cap, policy.base * 2 ** (attempt - 1))
    return rng.uniform(0, delay) if policy.jitter else delay
