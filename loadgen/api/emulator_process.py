"""The built-in emulator in a process of its own, for a run split over worker processes.

One emulator for all workers keeps one prompt cache and one set of quota windows (N
emulators would model N accounts), and in its own process it is not the bottleneck of
any worker. It serves exactly as `loadgen emulator` does (`emulator.server.serve` over
`EmulatorModel`), on 127.0.0.1 and a free port, but on the run's SharedClock: its modelled
latency, cache TTLs and quota windows pass in the same scenario time as the workers'
records. Its random source is the one the in-process emulator uses (`<seed>:emulator`).
"""

from __future__ import annotations

import random
import signal
from typing import Any

import anyio

from loadgen.api.coordinator import blocked_sigint
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve
from loadgen.engine import event_loop
from loadgen.engine.clock import SharedClock
from loadgen.engine.transport import TargetError

START_TIMEOUT_S = 60.0   # real seconds for the process to start and bind its port (a loaded machine)


def _serve_main(config: EmulatorConfig, seed: Any, region: str, scale: float, coordinator: Any, conn: Any) -> None:
    """The child: serve until the parent sends anything (or goes away)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the run stops
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the parent: see blocked_sigint
    clock = SharedClock(scale, coordinator.start_instant)
    model = EmulatorModel(config, clock=clock, rng=random.Random(f"{seed}:emulator"), region=region,
                          draw_seed=f"{seed}:emulator")

    async def main() -> None:
        try:
            async with serve(model, clock, host="127.0.0.1", port=0) as url:
                conn.send(("url", url))
                await anyio.to_thread.run_sync(_wait_for_word, conn, abandon_on_cancel=True)
        except OSError as e:
            conn.send(("error", str(e)))

    event_loop.run(main)


def _wait_for_word(conn: Any) -> None:
    try:
        conn.recv()
    except (EOFError, OSError):
        pass  # the parent is gone: stop serving


class EmulatorProcess:
    """`async with EmulatorProcess(ctx, ...) as url`: the emulator serving in a child process."""

    def __init__(self, ctx: Any, config: EmulatorConfig, *, seed: Any, region: str, scale: float,
                 coordinator: Any) -> None:
        self._ctx = ctx
        self._args = (config, seed, region, scale, coordinator)
        self._proc: Any = None
        self._conn: Any = None

    async def __aenter__(self) -> str:
        ours, theirs = self._ctx.Pipe()
        self._conn = ours
        self._proc = self._ctx.Process(target=_serve_main, args=(*self._args, theirs), name="loadgen-emulator",
                                       daemon=True)
        with blocked_sigint():
            self._proc.start()
        theirs.close()
        with anyio.move_on_after(START_TIMEOUT_S):
            while not ours.poll():
                if not self._proc.is_alive():
                    break
                await anyio.sleep(0.01)
        if not ours.poll():
            self._stop()
            raise TargetError(f"the emulator process could not start (exit code {self._proc.exitcode})")
        try:
            kind, value = ours.recv()
        except (EOFError, OSError):  # poll() is also true when the child died and closed its end
            self._stop()
            raise TargetError(f"the emulator process could not start (exit code {self._proc.exitcode})") from None
        if kind != "url":
            self._stop()
            raise TargetError(f"the emulator could not start: {value}")
        return value

    async def __aexit__(self, *exc: Any) -> None:
        await anyio.to_thread.run_sync(self._stop)

    def _stop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send("stop")
            except (OSError, ValueError):
                pass
        if self._proc is not None:
            self._proc.join(5.0)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(2.0)
