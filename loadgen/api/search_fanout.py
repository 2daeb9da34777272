"""Several rate searches at once over a Fanout (find-max-rate with `--workers` / `--cluster`).

Each arm's search is independent (arms are searched alone), so their trials run side
by side; within one search, spare workers run the rates the search may need next
(rate_search.Space.lookahead). Every search takes exactly the serial search's path, so
the answer is the serial one (loadgen/api/rate_search.py says why). Work is queued by
usefulness: the rates searches need now, then each finished search's follow-up job (the
results directory at the rate found), then speculative rates, shallowest first.

Ctrl-C (`stop.set`): nothing more starts, the trials in hand finish, and each search
keeps the path it has; a second Ctrl-C (KeyboardInterrupt) stops the trials in hand and
the searches end with the paths they have (`Searched.finished` False).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

from loadgen.api.fanout import Fanout
from loadgen.api.rate_search import Bounds, Space, follow, interleave


@dataclass
class Searched:
    """One search as far as it got: its trials on the search's path, in order, and its bounds."""

    trials: list[Any]
    bounds: Bounds
    finished: bool                   # the search reached its end (else: interrupted)
    wall_s: float
    unused: int = 0                  # speculative trials whose outcome the path never needed
    follow_up: Any = None            # the follow-up job's result, when it ran


@dataclass
class _One:
    space: Space
    t0: float
    path: list[tuple[float, Any]] = field(default_factory=list)
    known: dict[float, Any] = field(default_factory=dict)
    running: set[float] = field(default_factory=set)
    finished: bool = False
    wall_s: float = 0.0
    follow_up: Any = None
    follow_pending: bool = False


def run_searches(fan: Fanout, spaces: dict[Hashable, Space], trial: Callable[[Hashable, float], tuple],
                 passed: Callable[[Any], bool], stop: Any, *,
                 on_trial: Callable[[Hashable, Any], None] = lambda k, t: None,
                 on_finished: Callable[[Hashable, list[Any], Bounds, float], tuple | None] = lambda k, t, b, w: None,
                 on_follow_up: Callable[[Hashable, Any], Any] = lambda k, r: r) -> dict[Hashable, Searched]:
    """Run every search in `spaces` to its end (or to Ctrl-C).

    `trial(key, rate)` -> (fn, args): the job that probes `rate` for search `key`; its
    result goes to `passed`. `on_trial(key, t)`: each trial as it joins a search's path (in
    the path's order). `on_finished(key, trials, bounds, wall_s)` -> a follow-up (fn, args)
    job or None; `on_follow_up(key, result)` turns its result into `Searched.follow_up`.
    """
    now = time.monotonic()
    state = {k: _One(space, now) for k, space in spaces.items()}
    follow_ups: list[Hashable] = []

    def landed(job: tuple, result: Any) -> None:
        kind, key, rate = job
        one = state[key]
        if kind == "follow-up":
            one.follow_up, one.follow_pending = on_follow_up(key, result), False
            return
        one.running.discard(rate)
        one.known[rate] = result
        for t in follow(one.space, one.path, one.known, passed):
            on_trial(key, t)
        if not one.finished and one.space.plan([(r, passed(t)) for r, t in one.path]).next is None:
            one.finished, one.wall_s = True, time.monotonic() - one.t0
            bounds = one.space.plan([(r, passed(t)) for r, t in one.path])
            job = on_finished(key, [t for _, t in one.path], bounds, one.wall_s)
            if job is not None:
                one.follow_pending = True
                follow_ups.append((key, job))

    def queue() -> list[tuple[tuple, Callable[..., Any], tuple]]:
        needed, spec = [], {}
        for key, one in state.items():
            if one.finished:
                continue
            history = [(r, passed(t)) for r, t in one.path]
            wanted = one.space.lookahead(history, {r: passed(t) for r, t in one.known.items()}, one.running)
            needed += [(key, r) for d, r in wanted if d == 0]
            spec[key] = [(d, r) for d, r in wanted if d > 0]
        out = [(("trial", k, r), *trial(k, r)) for k, r in needed]
        out += [(("follow-up", k, None), *job) for k, job in follow_ups]
        out += [(("trial", k, r), *trial(k, r)) for k, r in interleave(spec)]
        return out

    try:
        while True:
            if all(o.finished and not o.follow_pending for o in state.values()):
                if fan.in_flight():  # only speculative trials no search needs: stop them
                    fan.abort()
                break
            if not stop.set:
                for job, fn, args in queue():
                    if fan.in_flight() >= fan.width:
                        break
                    if job[0] == "follow-up":
                        follow_ups[:] = [(k, j) for k, j in follow_ups if k != job[1]]
                    else:
                        state[job[1]].running.add(job[2])
                    fan.submit(job, fn, *args)
            if not fan.in_flight():
                break
            for job, result, error in fan.done(timeout=0.2):
                if error is not None:
                    raise error
                landed(job, result)
    except KeyboardInterrupt:  # a second Ctrl-C: the trials in hand stop; the paths so far stand
        fan.abort()
    except BaseException:
        fan.abort()
        raise
    out = {}
    for key, one in state.items():
        history = [(r, passed(t)) for r, t in one.path]
        used = {r for r, _ in one.path}
        wall = one.wall_s if one.finished else time.monotonic() - one.t0
        out[key] = Searched([t for _, t in one.path], one.space.plan(history), one.finished, wall,
                            sum(1 for r in one.known if r not in used), one.follow_up)
    return out
