"""Per-second buckets of scenario time: second -> a row of counts.

A row is a plain list (the run's hot path adds into it), its columns named by the
constants below. `sent` lands in the second an attempt was sent; its outcome and
tokens in the second it ended (when Bedrock charges the tokens).
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Mapping

SENT, OK, THROTTLED, ERROR, TIMEOUT, IN, OUT, CREAD, CWRITE = range(9)
COLUMNS = ("sent", "ok", "throttled", "error", "timeout", "input", "output", "cache_read", "cache_write")
NCOLS = len(COLUMNS)
STATUS_COL = {"ok": OK, "throttled": THROTTLED, "error": ERROR, "timeout": TIMEOUT}

Seconds = dict[int, list[int]]


def add_seconds(into: Seconds, other: Mapping[int, list[int]]) -> None:
    """Add `other`'s rows into `into`, second by second (rows are copied, never shared)."""
    for k, row in other.items():
        mine = into.get(k)
        if mine is None:
            into[k] = list(row)
        else:
            for i in range(NCOLS):
                mine[i] += row[i]


def merge_seconds(parts: Iterable[Mapping[int, list[int]]]) -> Seconds:
    """One set of buckets summing `parts` (arms, or worker parts of one arm)."""
    out: Seconds = {}
    for secs in parts:
        add_seconds(out, secs)
    return out


def window_totals(parts: Iterable[Mapping[int, list[int]]], lo: int, hi: int) -> list[int]:
    """Column sums over seconds lo..hi (inclusive) of every part."""
    tot = [0] * NCOLS
    for sec in parts:
        for k in range(lo, hi + 1):
            row = sec.get(k)
            if row is not None:
                for i in range(NCOLS):
                    tot[i] += row[i]
    return tot


def peaks(seconds: Mapping[int, list[int]], window: int = 60) -> tuple[int, int]:
    """Highest requests and quota tokens (input + cache write + output) in any rolling
    `window` seconds.

    A window's sum only grows when a non-empty second enters, so it suffices to
    check the windows ending at each non-empty second.
    """
    keys = sorted(seconds)
    q: deque[int] = deque()
    rpm = tpm = best_r = best_t = 0
    for k in keys:
        row = seconds[k]
        q.append(k)
        rpm += row[SENT]
        tpm += row[IN] + row[CWRITE] + row[OUT]
        while q[0] <= k - window:
            old = seconds[q.popleft()]
            rpm -= old[SENT]
            tpm -= old[IN] + old[CWRITE] + old[OUT]
        best_r = max(best_r, rpm)
        best_t = max(best_t, tpm)
    return best_r, best_t
