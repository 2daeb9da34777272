"""The emulator on `run`'s warp clock: its handlers are not clock drivers.

`loadgen run` starts the in-process emulator outside any driver (loadgen/api/run.py
`_target`), so a handler's latency sleep is the modelled service time, waited at the
clock's scale; were it counted as a load-driving sleep, a WarpClock would jump over it
as soon as every driver waited on the emulator, and the latency would vanish.
"""

from __future__ import annotations

import random
import time

import aiohttp
import anyio
import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import MODELLED_END_HEADER, serve
from loadgen.engine.clock import WarpClock

from emulator_fakes import HAIKU  # noqa: E402

TTFT_S = 2.0   # modelled scenario seconds, the whole response (no output rate)
SCALE = 10.0   # so 0.2 real seconds


def test_a_handler_latency_sleep_is_waited_not_jumped_over():
    async def go():
        clock = WarpClock(scale=SCALE)
        cfg = EmulatorConfig.from_mapping({"latency": {"preset": "fast", "ttft_s": TTFT_S}})
        model = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
        body = {"messages": [{"role": "user", "content": [{"text": "Reply with about 5 tokens"}]}],
                "inferenceConfig": {"maxTokens": 10}}
        async with serve(model, clock) as url, aiohttp.ClientSession() as http:
            # the one driver (load-driving task), busy on a request as the runner's transport is
            with clock.driver(), clock.in_flight():
                t0, wall0 = clock.now(), time.monotonic()
                async with http.post(f"{url}/model/{HAIKU}/converse", json=body) as r:
                    assert r.status == 200
                    modelled = float(r.headers[MODELLED_END_HEADER])
                return modelled, clock.now() - t0, time.monotonic() - wall0, clock.jumped_s

    modelled, scenario_s, wall_s, jumped_s = anyio.run(go)
    assert modelled == TTFT_S
    assert jumped_s == 0.0
    assert wall_s >= TTFT_S / SCALE * 0.95        # waited in real time at the clock's scale
    assert scenario_s == pytest.approx(TTFT_S, abs=0.5)
