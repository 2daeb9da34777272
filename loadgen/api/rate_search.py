"""The find-max-rate search as a pure function of the outcomes so far, and its lookahead.

The search (loadgen.api.maxrate): exponential from `start` (x2 up while passing, /2 down
while failing) until one rate passes and one fails, then geometric bisection until
fail/pass <= 1 + tolerance or `max_trials` are spent. Written as `plan(history)`, the
next rate (or None: done) after a list of (rate, passed) outcomes, the search is
replayable: the same outcomes give the same next rate, float for float.

That is what makes a parallel search exact. Each next rate depends on the outcome of the
one before, so the trials on the search's path cannot run side by side; but the two
rates that *could* come next (after a pass, after a fail) are known before the outcome
is. `lookahead` lists them, breadth first, so spare workers run them speculatively; the
path then takes whichever was needed and the other is discarded. The path, and so the
answer, is the serial search's, trial for trial: speculation only changes how soon each
trial's outcome is known. With 2 workers, one runs the trial on the path and the other
the likelier-cheap next one (the lower rate: after a fail); about half of those are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Bounds:
    """Where the search stands. `good` / `bad`: index into the history of the highest passing
    and lowest failing rate the search keeps (None: none yet); `next`: the rate to try (None: done)."""

    next: float | None
    good: int | None
    bad: int | None


@dataclass(frozen=True)
class Space:
    """The search's settings: start rate, tolerance (fail/pass ratio) and limits, in requests/s."""

    start: float
    tolerance: float = 0.05
    max_trials: int = 24
    lowest: float = 1 / 3600
    highest: float = 5000.0

    def plan(self, history: Sequence[tuple[float, bool]]) -> Bounds:
        """Replay the search over `history` ((rate, passed) in the order tried)."""
        good: int | None = None
        bad: int | None = None
        r = min(max(self.start, self.lowest), self.highest)
        bracketing = True
        for i, (rate, passed) in enumerate(history):
            if bracketing:
                if passed:
                    good = i if good is None or rate > history[good][0] else good
                    if bad is not None or rate >= self.highest:
                        bracketing = False
                    else:
                        r = min(rate * 2, self.highest)
                else:
                    bad = i if bad is None or rate < history[bad][0] else bad
                    if good is not None or rate <= self.lowest:
                        bracketing = False
                    else:
                        r = max(rate / 2, self.lowest)
            elif passed:
                good = i
            else:
                bad = i
        if len(history) >= self.max_trials:
            return Bounds(None, good, bad)
        if bracketing:
            return Bounds(r, good, bad)
        if good is not None and bad is not None and history[bad][0] / history[good][0] > 1 + self.tolerance:
            return Bounds((history[good][0] * history[bad][0]) ** 0.5, good, bad)
        return Bounds(None, good, bad)

    def lookahead(self, history: Sequence[tuple[float, bool]], known: Mapping[float, bool],
                  running: set[float] | frozenset[float], depth: int = 3) -> list[tuple[int, float]]:
        """(depth, rate) worth starting now, most useful first: depth 0 is the rate the search
        needs next; depth d a rate it needs d outcomes later under some outcomes. Rates whose
        outcome is `known` are followed, never listed; `running` ones are not listed again."""
        out: list[tuple[int, float]] = []
        seen: set[float] = set(running)
        frontier = [list(history)]
        for d in range(depth):
            nxt = []
            for h in frontier:
                r = self.plan(h).next
                while r is not None and r in known:
                    h = h + [(r, known[r])]
                    r = self.plan(h).next
                if r is None:
                    continue
                if r not in seen:
                    seen.add(r)
                    out.append((d, r))
                nxt += [h + [(r, False)], h + [(r, True)]]  # after a fail first: a lower rate runs sooner
            frontier = nxt
        return out


def search(probe: Callable[[float], T], space: Space, passed: Callable[[T], bool]) -> tuple[list[T], Bounds]:
    """The serial search: `probe(rate)` one trial after the other; (trials, final bounds)."""
    trials: list[T] = []
    history: list[tuple[float, bool]] = []
    bounds = space.plan(history)
    while bounds.next is not None:
        t = probe(bounds.next)
        trials.append(t)
        history.append((bounds.next, passed(t)))
        bounds = space.plan(history)
    return trials, bounds


def follow(space: Space, path: list[tuple[float, T]], known: Mapping[float, T], passed: Callable[[T], bool]) -> list[T]:
    """Extend `path` ((rate, outcome) on the search's path) with the outcomes already `known`;
    returns the ones added, in order (the trials the search has now taken)."""
    added: list[T] = []
    while True:
        r = space.plan([(rate, passed(t)) for rate, t in path]).next
        if r is None or r not in known:
            return added
        path.append((r, known[r]))
        added.append(known[r])


def interleave(wanted: Mapping[Hashable, list[tuple[int, float]]]) -> list[tuple[Hashable, float]]:
    """Several searches' `lookahead` lists as one queue: by depth, then in the searches' order."""
    items = [(d, n, key, r) for n, (key, lst) in enumerate(wanted.items()) for d, r in lst]
    return [(key, r) for _, _, key, r in sorted(items, key=lambda x: (x[0], x[1]))]
