"""How long this process went without running while a block of code ran: the slack a test
that compares real (wall) time against a stated bound may add, measured, not guessed.

A loaded machine (CI's 2 cores shared by several test workers) sometimes leaves a
process unscheduled for hundreds of ms, and a garbage collection or a page-fault storm
holds it the same way. Real time measured across such a stall grows by its length, and
no fixed bound written for an idle machine survives it. A thread that asks to wake every
few ms and records how late it woke sees every such stall: it cannot run either (the
stall is the process's, or the GIL's for longer than the switch interval). On an idle
machine the slack is a few ms, so a bound plus the slack stays as strict as the bound.
"""

from __future__ import annotations

import threading
import time


class StallWatch:
    """`with StallWatch() as w: ...`; then `w.longest_s`: the longest stall seen (s)."""

    def __init__(self, period_s: float = 0.002) -> None:
        self.period_s = period_s
        self.longest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)

    def _watch(self) -> None:
        before = time.perf_counter()
        while not self._stop.wait(self.period_s):
            now = time.perf_counter()
            self.longest_s = max(self.longest_s, now - before - self.period_s)
            before = now

    def __enter__(self) -> "StallWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
