"""VirtualClock: an asyncio loop whose time jumps to the next timer when nothing can run."""

from __future__ import annotations

import time

import anyio
import pytest

from loadgen.engine.clock import VirtualClock
from stall_watch import StallWatch


def vrun(clock: VirtualClock, fn, *args):
    return anyio.run(fn, *args, backend_options={"loop_factory": clock.loop_factory})


def test_sleepers_wake_in_deadline_order_at_exact_virtual_times_and_cost_no_wall_time():
    c = VirtualClock()
    woke: list[tuple[float, float]] = []

    async def sleeper(t: float) -> None:
        await c.sleep_until(t)
        woke.append((t, c.now()))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for t in (36000.0, 5.0, 0.25, 3600.0, 3600.0, 0.0):
                tg.start_soon(sleeper, t)

    w0 = time.perf_counter()
    with StallWatch() as stall:   # a loaded machine's stalls are not sleeps
        vrun(c, main)
    assert time.perf_counter() - w0 < 1.0 + stall.longest_s  # ten hours of scenario time
    assert [t for t, _ in woke] == [0.0, 0.25, 5.0, 3600.0, 3600.0, 36000.0]
    assert all(now == t for t, now in woke)
    assert c.now() == 36000.0


def test_clock_sleepers_and_loop_timers_wake_in_time_order_ties_in_sleep_order():
    # sleep_until's sleepers live in the clock's own heap, anyio.sleep's in the loop's:
    # one timeline all the same, and sleepers due together wake in the order they slept
    c = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def clock_sleeper(name: str, t: float) -> None:
        await c.sleep_until(t)
        woke.append((name, c.now()))

    async def loop_sleeper(name: str, dt: float) -> None:
        await anyio.sleep(dt)
        woke.append((name, c.now()))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for name, t in (("a", 2.0), ("b", 7.5), ("c", 2.0), ("d", 2.0)):
                tg.start_soon(clock_sleeper, name, t)
            for name, dt in (("x", 1.0), ("y", 3.0), ("z", 9.0)):
                tg.start_soon(loop_sleeper, name, dt)

    vrun(c, main)
    assert woke == [("x", 1.0), ("a", 2.0), ("c", 2.0), ("d", 2.0), ("y", 3.0), ("b", 7.5), ("z", 9.0)]


def test_sleep_in_the_past_returns_at_once_and_time_never_goes_back():
    c = VirtualClock()

    async def main() -> list[float]:
        seen = [c.now()]
        await c.sleep(10)
        seen.append(c.now())
        await c.sleep_until(3)
        seen.append(c.now())
        await c.sleep(0)
        seen.append(c.now())
        return seen

    assert vrun(c, main) == [0.0, 10.0, 10.0, 10.0]


def test_anyio_timeouts_run_on_virtual_time():
    c = VirtualClock()

    async def main():
        with anyio.move_on_after(30) as scope:
            await c.sleep(3600)
        t_move = c.now()
        try:
            with anyio.fail_after(2.5):
                await anyio.sleep(100)
        except TimeoutError:
            pass
        return scope.cancelled_caught, t_move, c.now(), anyio.current_time()

    caught, t_move, t_end, loop_time = vrun(c, main)
    assert caught and t_move == pytest.approx(30)
    assert t_end == pytest.approx(32.5)
    assert loop_time == pytest.approx(32.5)  # anyio.current_time() is the virtual clock


def test_time_stands_still_while_any_task_can_run():
    c = VirtualClock()

    async def busy(out: list[float]) -> None:
        for _ in range(200):  # runnable every turn of the loop
            await anyio.lowlevel.checkpoint()
        out.append(c.now())

    async def main() -> list[float]:
        out: list[float] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.sleep, 1.0)
            tg.start_soon(busy, out)
        out.append(c.now())
        return out

    assert vrun(c, main) == [0.0, 1.0]


def test_task_waiting_for_a_slot_held_by_sleepers_does_not_stall_time():
    # The case driver counting gets wrong: the waiter is "busy" but blocked on
    # tasks asleep on the clock. The loop sees that nothing is runnable and jumps.
    c = VirtualClock()
    ends: list[float] = []

    async def request(slots: anyio.Semaphore, latency: float) -> None:
        async with slots:
            await c.sleep(latency)
        ends.append(c.now())

    async def main() -> None:
        slots = anyio.Semaphore(2)
        async with anyio.create_task_group() as tg:
            for lat in (10.0, 20.0, 5.0, 5.0):
                tg.start_soon(request, slots, lat)

    vrun(c, main)
    assert sorted(ends) == [10.0, 15.0, 20.0, 20.0]


def test_a_cancelled_sleeper_leaves_no_timer_behind():
    c = VirtualClock()

    async def main() -> float:
        async with anyio.create_task_group() as tg:
            tg.start_soon(c.sleep, 7200.0)
            await c.sleep(1.0)
            tg.cancel_scope.cancel()
        await anyio.sleep(0)
        return c.now()

    assert vrun(c, main) == 1.0
    assert c.now() == 1.0  # the loop did not run on to the dead 7200 s timer


def test_cancel_scope_deadline_cancels_a_clock_sleep():
    c = VirtualClock()

    async def main() -> tuple[bool, float]:
        with anyio.CancelScope(deadline=anyio.current_time() + 42) as scope:
            await c.sleep_until(1e6)
        return scope.cancel_called, c.now()

    assert vrun(c, main) == (True, 42.0)


def test_protocol_shape_matches_the_other_clocks():
    c = VirtualClock()
    assert c.kind == "virtual" and c.scale == 1.0
    with c.driver(), c.in_flight(), c.waiting():
        pass
    assert c.now() == 0.0
