"""The open-loop dispatcher under saturation: bounded workers, launched requests keep running."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel

from loadgen.engine.clock import RealClock
from loadgen.engine.runner import OVERDUE_YIELD_EVERY, Limits, Runner
from loadgen.scenario import loads
from loadgen.engine.transport import Outcome

# 200,000 requests/s for 5 ms: far more than one core dispatches, so every start is
# overdue after the first few.
SCENARIO = """
name = "saturated"
seed = 3
duration = "0.005s"

[target]
max_in_flight = {max_in_flight}

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 50

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = {{ dist = "constant", value = 12 }}
output_tokens = {{ dist = "constant", value = 8 }}

[arrivals]
kind = "constant"
rate = "200000/s"

[[arms]]
name = "a"
"""


class Recorder:
    """A transport that answers after two loop turns and records who called and when."""

    def __init__(self, clock: RealClock) -> None:
        self.clock = clock
        self.runner: Runner | None = None
        self.tasks: set[int] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.backlog: list[int] = []  # requests dispatched but not yet sending, at each send

    async def call(self, params, *, stream, timeout, on_first_token=None, draw_key=None):
        assert self.runner is not None
        self.backlog.append(self.runner.dispatched - len(self.backlog) - 1)
        self.tasks.add(id(asyncio.current_task()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        start = self.clock.now()
        await anyio.lowlevel.checkpoint()
        await anyio.lowlevel.checkpoint()
        self.in_flight -= 1
        return Outcome(status="ok", start=start, end=self.clock.now(), first_token=self.clock.now(),
                       usage={"inputTokens": 20, "outputTokens": 8}, text="ok", http_status=200)


def run(max_in_flight: int) -> tuple[Runner, Recorder, list]:
    sc = loads(SCENARIO.format(max_in_flight=max_in_flight), "<test>")
    clock = RealClock()
    attempts: list = []
    t = Recorder(clock)
    runner = Runner(sc, t, clock, sink=lambda a, costs: attempts.append(a),
                    pricer=lambda m, u, ttl, tier=None: {"total": 0.0}, limits=Limits())
    t.runner = runner
    anyio.run(runner.run)
    return runner, t, attempts


def test_every_arrival_is_sent_once_on_at_most_max_in_flight_workers():
    runner, t, attempts = run(max_in_flight=4)
    assert len(attempts) == 1000 == runner.dispatched
    assert sorted(a.session for a in attempts) == list(range(1000))
    assert t.max_in_flight <= 4
    assert len(t.tasks) <= 4  # workers are reused, not one task per request
    assert runner.in_flight == 0


def test_a_saturated_dispatcher_lets_launched_requests_start():
    # max_in_flight never binds here, so only the dispatcher's own yields let the
    # launched requests run: it must not build the whole backlog first
    runner, t, attempts = run(max_in_flight=5000)
    assert len(attempts) == 1000
    assert max(t.backlog) <= OVERDUE_YIELD_EVERY
    assert all(a.status == "ok" for a in attempts)
