"""Ctrl-C (and SIGTERM) for runs, sweeps and searches: stop cleanly, keep what was written.

These notices go straight to stderr: they answer the user's keystroke while the API is
busy, when the command that called it cannot print.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import anyio

from loadgen.engine.runner import Runner


def notice(msg: str) -> None:
    """An interrupt notice on stderr, at once."""
    print(msg, file=sys.stderr, flush=True)


async def watch_signals(runner: Runner, scope: anyio.CancelScope) -> None:
    """First Ctrl-C: stop dispatch and give in-flight requests a grace period; then abort.

    Runs in the task group around the runner, which is cancelled as soon as the
    runner returns, so the grace timer never holds a finished run open.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            notice(f"\ninterrupt: stopping dispatch; waiting up to {runner.limits.grace_s:g} s "
                 "for in-flight requests (Ctrl-C again to abort)")
            runner.stop("interrupted")
            with anyio.move_on_after(runner.limits.grace_s):
                async for _ in signals:
                    break
            runner.abort()
            return


class StopFlag:
    """Ctrl-C (or SIGTERM) between the runs of a sweep or find-max-rate: let the run or
    trial in hand finish (its files too), then stop; a second one aborts at once
    (KeyboardInterrupt). Inside a run the runner's own handler takes over (drive), and the
    event loop puts the default handlers back when it closes, hence `install` after each run.

    Outside the main thread (no signals there) it does nothing and `set` stays False.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, what: str, *, enabled: bool = True) -> None:
        self.what, self.set, self.enabled = what, False, enabled
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if not self.enabled:
            return
        for sig in self.SIGNALS:
            old = signal.signal(sig, self._handle)
            self._old.setdefault(sig, old)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        notice(f"\ninterrupt: finishing {self.what} in hand, then stopping (Ctrl-C again to abort)")

    def __enter__(self) -> "StopFlag":
        self.install()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()
