"""The seeded schedule: what every arm sends, when, and how big. Pure: no clock, no I/O.

`loadgen run` / `simulate` (runner.py) and `loadgen validate` (plan.py) both draw the
schedule from here, so the plan describes exactly what a run sends. Every arm reads the
same draws (common random numbers), so a difference between arms is the arm's doing.

The seed strings are part of the contract: changing one changes the requests of every
scenario that uses it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Iterator

from loadgen.scenario.distributions import session_turns
from loadgen.scenario import Scenario
from loadgen.scenario.toml_lines import key_lines, line_of
from loadgen.scenario.units import format_duration
from loadgen.engine.workload import Sizes, draw_sizes, seeded_random

# The most requests (first attempts) one arm may be planned to send without --allow-huge.
# Ten million is a week at ~16/s, past any load test we know of, and it keeps `simulate`
# within minutes; the usual cause of more is a unit slip ("876000h", "1000000/s").
MAX_REQUESTS_PER_ARM = 10_000_000


@dataclass(frozen=True)
class Segment:
    """Execution segment `index` of `count` equal ones: the share of the schedule one worker
    sends (k6's execution segments; for equal segments its striped offsets reduce to k mod n).

    Items are striped: open-loop arrival k, or agent session k with all its turns, belongs
    to segment k mod count. So every segment gets an even share of every stretch of the
    run (a ramp's peak is split n ways, not handed to one worker), a session is never cut
    in half, and the union of the `count` segments is exactly the whole schedule: same
    indexes (the request identities and seeds), same times, same sizes.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"segment {self.index} of {self.count}: need 0 <= index < count")

    def owns(self, k: int) -> bool:
        return k % self.count == self.index


WHOLE = Segment()


def open_loop(sc: Scenario, segment: Segment = WHOLE) -> Iterator[tuple[int, float, Sizes]]:
    """(request index, intended start offset in seconds, sizes) of an `[arrivals]` scenario,
    the requests of `segment` only (the index is the whole schedule's).

    A trace's per-request token counts override the drawn sizes (`input_tokens` is the
    whole request's input, so the question is what is left after the prefix).
    """
    assert sc.arrivals is not None
    w = sc.workload
    # every segment draws every arrival (one seeded stream), and sizes for its own only
    for i, point in enumerate(sc.arrivals.arrivals(sc.duration, random.Random(f"{sc.seed}:arrivals"))):
        if not segment.owns(i):
            continue
        sizes = draw_sizes(sc, seeded_random(f"{sc.seed}:sizes:{i}"))
        if point.input_tokens is not None and w.question_tokens is not None:
            sizes = replace(sizes, question_tokens=max(1, point.input_tokens - w.prefix_tokens))
        if point.output_tokens is not None:
            sizes = replace(sizes, output_tokens=point.output_tokens)
        yield i, point.offset, sizes


def session_starts(sc: Scenario) -> Iterator[float]:
    """Start offsets (seconds) of the sessions of a `[sessions]` scenario."""
    assert sc.sessions is not None
    return sc.sessions.arrival.offsets(sc.duration, random.Random(f"{sc.seed}:sessions"))


def sessions(sc: Scenario, segment: Segment = WHOLE) -> Iterator[tuple[int, float]]:
    """(session index, start offset in seconds) of `segment`'s sessions: whole sessions, each
    with every one of its turns (SessionDraws(sc, index) draws them)."""
    for i, start in enumerate(session_starts(sc)):
        if segment.owns(i):
            yield i, start


class SessionDraws:
    """The random draws of one agent session, in the order they are made: the number of
    turns, then per turn its sizes and the think time after it."""

    def __init__(self, sc: Scenario, index: int) -> None:
        assert sc.sessions is not None
        self._sc = sc
        self._rng = seeded_random(f"{sc.seed}:session:{index}")
        self.turns = session_turns(self._rng, sc.workload.turns_min, sc.workload.turns_max)

    def sizes(self) -> Sizes:
        return draw_sizes(self._sc, self._rng)

    def think_time(self) -> float:
        """Seconds between a turn's end and the next turn's start."""
        assert self._sc.sessions is not None
        return self._sc.sessions.think_time.sample(self._rng)


# --------------------------------------------------------------------------- size, without drawing

def expected_requests(sc: Scenario) -> float:
    """Requests (first attempts) per arm the schedule is expected to hold, computed from the
    process alone (its expected_count): exact for constant, stages and trace arrivals,
    the mean for poisson and bursts. Agent sessions: expected sessions x mean turns, an upper
    estimate (turns that would start after the end are not sent). inf when it overflows.
    """
    try:
        if sc.arrivals is not None:
            return sc.arrivals.expected_count(sc.duration)
        assert sc.sessions is not None
        w = sc.workload
        return sc.sessions.arrival.expected_count(sc.duration) * (w.turns_min + w.turns_max) / 2
    except OverflowError:
        return math.inf


def size_problem(sc: Scenario, allow_huge: bool = False) -> str | None:
    """`file:line: duration: ...` when the plan holds more than MAX_REQUESTS_PER_ARM requests
    per arm (unless `allow_huge`), else None. Costs no more than a few arithmetic steps."""
    n = expected_requests(sc)
    if allow_huge or n <= MAX_REQUESTS_PER_ARM:
        return None
    process = sc.arrivals if sc.arrivals is not None else sc.sessions.arrival  # type: ignore[union-attr]
    line = line_of(key_lines(sc.source), ("duration",)) if sc.source else 1
    about = f"{n:,.0f}" if math.isfinite(n) else "more than 1e308"
    shape = process.describe() + (" (session starts)" if sc.sessions is not None else "")
    return (f"{sc.path}:{line}: duration: about {about} requests per arm ({shape} for "
            f"{format_duration(sc.duration)}) is above the limit of {MAX_REQUESTS_PER_ARM:,}; "
            f"check the units of duration and rate, or pass --allow-huge to plan it anyway")
