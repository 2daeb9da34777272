"""WarpClock: scenario time runs `scale` x real time and skips idle gaps."""

import anyio
import pytest

from loadgen.engine.clock import RealClock, VirtualClock, WarpClock
from stall_watch import StallWatch


def run(fn):
    return anyio.run(fn)


def test_real_clock_starts_near_zero_and_sleeps():
    async def main():
        c = RealClock()
        t0 = c.now()
        await c.sleep(0.02)
        return t0, c.now()

    t0, t1 = run(main)
    assert 0 <= t0 < 0.05
    assert t1 >= 0.02


def test_warp_scale_runs_scenario_time_faster():
    async def main():
        c = WarpClock(scale=100)
        with c.driver():
            t_wall = anyio.current_time()
            # a busy driver exists (this one, not sleeping on the clock) while we
            # wait outside the clock: no jump, time only flows at 100x
            await anyio.sleep(0.05)
            return c.now(), anyio.current_time() - t_wall

    scen, wall = run(main)
    assert scen == pytest.approx(100 * wall, rel=0.2)


def test_idle_drivers_jump_to_earliest_deadline():
    async def main():
        c = WarpClock(scale=1)
        woke = []

        async def sleeper(t, d):
            with d:
                await c.sleep_until(t)
                woke.append((t, c.now()))

        t_wall = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for t in (3600.0, 600.0, 7200.0):
                tg.start_soon(sleeper, t, c.driver())
        return woke, anyio.current_time() - t_wall, c.jumped_s

    with StallWatch() as stall:   # how long a loaded machine left the process unscheduled
        woke, wall, jumped = run(main)
    assert [t for t, _ in woke] == [600.0, 3600.0, 7200.0]
    for t, now in woke:
        # woke on time in scenario seconds: never early; late only by the real time the
        # waking task waited for the event loop (scale 1), which a busy machine stretches
        assert t - 1e-6 <= now < t + 0.5 + stall.longest_s
    assert wall < 2.0 + stall.longest_s  # two hours of scenario time, no real waiting
    assert jumped == pytest.approx(7200.0, abs=0.1)


def test_no_jump_while_a_driver_is_busy():
    async def main():
        c = WarpClock(scale=1)
        result = {}

        async def busy(d):
            with d:
                await anyio.sleep(0.1)  # e.g. waiting for an HTTP response: real time
                result["busy_done_at"] = c.now()

        async def sleeper(d):
            with d:
                await c.sleep_until(1000.0)
                result["sleeper_at"] = c.now()

        async with anyio.create_task_group() as tg:
            tg.start_soon(busy, c.driver())
            tg.start_soon(sleeper, c.driver())
        return result

    r = run(main)
    assert r["busy_done_at"] < 1.0  # the sleeper did not drag time forward under the busy task
    assert r["sleeper_at"] == pytest.approx(1000.0, abs=0.05)


def test_sleep_outside_a_driver_wakes_on_a_jump():
    async def main():
        c = WarpClock(scale=1)
        out = {}

        async def emulator_like():
            await c.sleep_until(50.0)  # not a driver: never causes a jump
            out["emu"] = c.now()

        async def driver(d):
            with d:
                await c.sleep_until(100.0)
                out["driver"] = c.now()

        async with anyio.create_task_group() as tg:
            tg.start_soon(emulator_like)
            tg.start_soon(driver, c.driver())
        return out

    out = run(main)
    # the driver idles -> jump to 100; the emulator's sleep (deadline 50) ends at the jump
    assert out["driver"] == pytest.approx(100.0, abs=0.05)
    assert 50.0 <= out["emu"] <= 100.1


def test_warp_rejects_bad_scale():
    with pytest.raises(ValueError):
        WarpClock(scale=0)


# ---- loadgen run's held warp clock: the generator's own work takes no scenario time ----

def test_requests_due_together_start_together_on_a_held_warp_clock():
    """Two arms' turns due at t = 10 s: each spends 5 ms of real time building its
    request. At x60 the second used to start 0.3 s late (5 ms x 60) because the first
    one's send let time flow; now both start at exactly 10 s."""
    real = [0.0]
    c = WarpClock(scale=60, monotonic=lambda: real[0], hold_between_requests=True)
    starts: dict[str, float] = {}
    a_sent = anyio.Event()

    async def turn(name: str, d) -> None:
        with d:
            await c.sleep_until(10.0)
            real[0] += 0.005            # the generator's own work: build and sign the request
            starts[name] = c.now()
            with c.in_flight():
                if name == "b":
                    await a_sent.wait()  # b stays on the wire while a gets ready
                else:
                    a_sent.set()

    async def main() -> None:
        c.start()
        async with anyio.create_task_group() as tg:
            for name in ("a", "b"):
                tg.start_soon(turn, name, c.driver())

    run(main)
    assert starts == {"a": 10.0, "b": 10.0}


def test_a_late_timer_does_not_make_its_request_late():
    """A turn due at t = 1 s while another request is on the wire: its timer fires 20 ms
    (real) late. Time stands at 1 s until it has sent, instead of running on to 2.2 s."""
    real = [0.0]
    c = WarpClock(scale=60, monotonic=lambda: real[0], hold_between_requests=True)
    seen: dict[str, float] = {}
    done = anyio.Event()

    async def long_request(d) -> None:
        with d:
            with c.in_flight():
                await done.wait()

    async def late_timer() -> None:
        await anyio.sleep(0.01)
        real[0] = 1.0 / 60 + 0.020        # 1 s of scenario time, and 20 ms (real) more

    async def turn(d) -> None:
        with d:
            await anyio.sleep(0)          # let the long request get on the wire
            await c.sleep_until(1.0)
            seen["start"] = c.now()
            with c.in_flight():
                seen["sending"] = c.now()
            done.set()

    async def main() -> None:
        c.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_request, c.driver())
            tg.start_soon(turn, c.driver())
            tg.start_soon(late_timer)

    run(main)
    assert seen["start"] == 1.0
    assert seen["sending"] == 1.0
    assert c.forced_flows == 0


def test_a_driver_counts_from_creation_so_no_jump_before_its_task_starts():
    """The runner makes a task's driver before spawning it: until that task has entered
    and left it, a sleeping driver must not make the clock jump."""
    async def main():
        c = WarpClock(scale=1)
        woke = {}

        async def sleeper(d):
            with d:
                await c.sleep_until(1000.0)
                woke["at"] = c.now()

        async with anyio.create_task_group() as tg:
            pending = c.driver()  # spawned, its task not started yet
            tg.start_soon(sleeper, c.driver())
            await anyio.sleep(0.05)
            assert c.now() < 1.0  # no jump: the pending driver counts as busy
            with pending:
                pass  # its task ran and ended: now every driver sleeps
        return woke["at"]

    assert run(main) == pytest.approx(1000.0, abs=0.05)


def test_every_clock_has_the_protocol_and_no_bookkeeping_outside_warp():
    for c in (RealClock(), WarpClock(scale=2), VirtualClock()):
        for name in ("now", "sleep_until", "sleep", "start", "driver", "in_flight", "waiting"):
            assert callable(getattr(c, name)), (type(c).__name__, name)
        assert isinstance(c.kind, str) and c.scale > 0
    # real and virtual clocks hand out one shared no-op mark: nothing to count
    r = RealClock()
    assert r.driver() is r.in_flight() is VirtualClock().waiting()
