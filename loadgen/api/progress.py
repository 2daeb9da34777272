"""Live progress while a run goes: one updating status line on a terminal, plain
periodic lines otherwise (CI logs, pipes). Written to stderr so stdout stays the
summary. Reads only cheap counters (metrics snapshot, runner state); no percentiles.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import anyio


class Progress:
    def __init__(self, runner: Any, metrics: Any, clock: Any, *, duration: float, quiet: bool = False,
                 stream: TextIO | None = None, tty_interval: float = 0.5, plain_interval: float = 10.0) -> None:
        self.runner, self.metrics, self.clock = runner, metrics, clock
        self.duration = duration
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = tty_interval if self.tty else plain_interval
        self._wall0 = time.monotonic()
        self._shown = False

    def line(self) -> str:
        snap = self.metrics.snapshot()
        t = snap.total
        now = self.clock.now()
        rate = self.metrics.recent(now, 60.0)
        pct = min(100.0, 100.0 * now / self.duration) if self.duration else 0.0
        return (
            f"[{_hms(now)} / {_hms(self.duration)} scenario ({pct:3.0f}%), {time.monotonic() - self._wall0:5.1f}s wall] "
            f"sent {t.sent} ok {t.ok} thr {t.throttled} err {t.error + t.timeout} | in-flight {self.runner.in_flight} "
            f"| {rate.rpm:.0f} rpm {rate.tpm / 1000:.1f}k tpm | warm {100 * t.warm_ratio:.0f}% | ${t.cost_usd:.4f}"
        )

    async def run(self) -> None:
        if self.quiet:
            return
        while True:
            await anyio.sleep(self.interval)
            self.show()

    def show(self) -> None:
        if self.quiet:
            return
        text = self.line()
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self.quiet:
            return
        self.show()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class WorkersProgress(Progress):
    """The one status line of a run split over worker processes: the sum of the rows the
    workers write into the coordinator (api/coordinator.py), and how many still run.
    rpm/tpm are the sums of the workers' own last-60-scenario-seconds figures, so the line
    shows what one process's line (`Metrics.recent`) would: rates computed here from
    successive sums were scaled from the span between two lines (10 s apart in a log)
    and read several times what was sent in the last minute."""

    def __init__(self, coordinator: Any, workers: int, clock: Any, *, duration: float, quiet: bool = False,
                 stream: TextIO | None = None, **kw: Any) -> None:
        super().__init__(None, None, clock, duration=duration, quiet=quiet, stream=stream, **kw)
        self.coordinator, self.workers = coordinator, workers

    def line(self) -> str:
        t = self.coordinator.totals()
        now = self.clock.now()
        rpm, tpm = t["rpm"], t["tpm"]
        warm_cold = t["warm"] + t["cold"]
        warm = 100 * t["warm"] / warm_cold if warm_cold else 0.0
        running = self.workers - int(t["finished"])
        pct = min(100.0, 100.0 * now / self.duration) if self.duration else 0.0
        return (
            f"[{_hms(now)} / {_hms(self.duration)} scenario ({pct:3.0f}%), {time.monotonic() - self._wall0:5.1f}s wall] "
            f"sent {t['sent']:.0f} ok {t['ok']:.0f} thr {t['throttled']:.0f} err {t['failed']:.0f} "
            f"| in-flight {t['in_flight']:.0f} | {rpm:.0f} rpm {tpm / 1000:.1f}k tpm | warm {warm:.0f}% "
            f"| ${t['cost_usd']:.4f} | workers {running}/{self.workers}"
        )
