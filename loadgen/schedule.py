"""The seeded schedule: what every arm sends, when, and how big. Pure: no clock, no I/O.

`loadgen run` / `simulate` (runner.py) and `loadgen validate` (plan.py) both draw the
schedule from here, so the plan describes exactly what a run sends. Every arm reads the
same draws (common random numbers), so a difference between arms is the arm's doing.

The seed strings are part of the contract: changing one changes the requests of every
scenario that uses it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Iterator

from loadgen.arrivals import arrivals, offsets, sample, session_turns
from loadgen.scenario import Scenario
from loadgen.workload import Sizes, draw_sizes


def open_loop(sc: Scenario) -> Iterator[tuple[int, float, Sizes]]:
    """(request index, intended start offset in seconds, sizes) of an `[arrivals]` scenario.

    A trace's per-request token counts override the drawn sizes (`input_tokens` is the
    whole request's input, so the question is what is left after the prefix).
    """
    assert sc.arrivals is not None
    w = sc.workload
    for i, point in enumerate(arrivals(sc.arrivals, sc.duration, random.Random(f"{sc.seed}:arrivals"))):
        sizes = draw_sizes(sc, random.Random(f"{sc.seed}:sizes:{i}"))
        if point.input_tokens is not None and w.question_tokens is not None:
            sizes = replace(sizes, question_tokens=max(1, point.input_tokens - w.prefix_tokens))
        if point.output_tokens is not None:
            sizes = replace(sizes, output_tokens=point.output_tokens)
        yield i, point.offset, sizes


def session_starts(sc: Scenario) -> Iterator[float]:
    """Start offsets (seconds) of the sessions of a `[sessions]` scenario."""
    assert sc.sessions is not None
    return offsets(sc.sessions.arrival, sc.duration, random.Random(f"{sc.seed}:sessions"))


class SessionDraws:
    """The random draws of one agent session, in the order they are made: the number of
    turns, then per turn its sizes and the think time after it."""

    def __init__(self, sc: Scenario, index: int) -> None:
        assert sc.sessions is not None
        self._sc = sc
        self._rng = random.Random(f"{sc.seed}:session:{index}")
        self.turns = session_turns(self._rng, sc.workload.turns_min, sc.workload.turns_max)

    def sizes(self) -> Sizes:
        return draw_sizes(self._sc, self._rng)

    def think_time(self) -> float:
        """Seconds between a turn's end and the next turn's start."""
        assert self._sc.sessions is not None
        return sample(self._sc.sessions.think_time, self._rng)
