"""One scenario in virtual time: the runner on a VirtualClock, the emulator's model called
in-process (InProcessTransport). No sockets; time moves only when every task waits, so
hours of traffic take seconds. `simulate`, sweeps and find-max-rate all run through here.
"""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio

from loadgen.api.batch_setup import has_batch, inprocess_batch
from loadgen.api.inprocess import InProcessTransport
from loadgen.api.session import RunState, drive
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.engine.runner import Limits


def run_virtual(state: RunState, pricer: Any, emulator_config: EmulatorConfig, *, max_requests: int | None = None,
                signals: bool = True) -> RunState:
    """Run `state.sc` to the end on `state.clock` (a fresh VirtualClock) in a new event loop.

    Called where an event loop already runs (a notebook cell), the simulation gets a
    thread of its own, as one thread holds one running loop; Ctrl-C is then left alone.
    """
    sc, clock = state.sc, state.clock

    async def main(signals: bool) -> None:
        # the same seeds as `loadgen run`'s in-process emulator
        model = EmulatorModel(emulator_config, clock=clock, rng=random.Random(f"{sc.seed}:emulator"),
                              region=sc.target.region, draw_seed=f"{sc.seed}:emulator")
        transport = InProcessTransport(model, clock, rng=random.Random(f"{sc.seed}:request-ids"))
        batch = inprocess_batch(sc, clock, emulator_config) if has_batch(sc) else None
        await drive(state, transport, pricer, limits=Limits(max_requests=max_requests), signals=signals,
                    batch=batch)

    def go(signals: bool) -> None:
        anyio.run(main, signals, backend_options={"loop_factory": clock.loop_factory})

    if _loop_running():
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(go, False).result()
    else:
        go(signals)
    return state


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
