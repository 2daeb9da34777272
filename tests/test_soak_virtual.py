"""Reliability soak in virtual time: an hour of two-arm traffic under a fault storm loses nothing.

tests/soak/storm.toml runs through `loadgen simulate`'s engine (the real runner, the
emulator's model in-process, a VirtualClock, a real results directory), then:

- every attempt is a line of requests.jsonl, and the summary counts exactly those lines;
- per arm, sent = ok + throttled + error + timeout, and every request's attempts are
  numbered 1..k with only its last one allowed to end it;
- the cost recomputed from the records' tokens with the run's pricer is each record's
  cost, and the records' costs add up to the summary's total (to 1e-9 USD);
- no task is left behind when the run returns;
- memory is flat: the second half of the hour adds no more live memory blocks than
  the per-second rate table needs (one row per arm and second, metrics.py), so nothing
  is kept per request (counted with sys.getallocatedblocks(): tracemalloc would triple
  the test's time).

LOADGEN_SOAK_RATE=20/s swaps the bursts for steady Poisson traffic at that rate per arm
(1 h at 20/s is ~150,000 attempts: minutes, not seconds; for a manual soak).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import loadgen.api.virtual as virtual_mod
from loadgen.engine.clock import VirtualClock
from loadgen.emulator.config import EmulatorConfig
from loadgen.results.directory import ResultsDir
from loadgen.api.session import RunState, run_facts
from loadgen.api.setup import make_pricer
from loadgen.scenario import loads
from loadgen.api.virtual import run_virtual

STORM = Path(__file__).parent / "soak" / "storm.toml"
RETRYABLE = {"throttled", "timeout"}
SERVER_CODES = {"InternalServerException", "ServiceUnavailableException", "ModelStreamErrorException",
                "ConnectionError"}
# Live memory blocks the second half may add: the per-second rate table (measured ~1.2
# blocks per arm and scenario second) and some slack; a leak of one block per request
# (~7,000 in the second half) would not fit.
BLOCKS_PER_ARM_SECOND = 2
BLOCKS_SLACK = 2000


def live_blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


class WatchedRun(RunState):
    """A RunState that counts live memory blocks when scenario time passes halfway."""

    def __init__(self, sc, clock, out) -> None:
        super().__init__(sc, clock, out)
        self.half = sc.duration / 2
        self.blocks_at_half: int | None = None

    def sink(self, a, costs) -> None:
        super().sink(a, costs)
        if self.blocks_at_half is None and self.clock.now() >= self.half:
            self.blocks_at_half = live_blocks()


def storm_text() -> str:
    text = STORM.read_text()
    rate = os.environ.get("LOADGEN_SOAK_RATE")
    if rate:
        head, _, tail = text.partition("[arrivals]")
        _, _, rest = tail.partition("[retry]")
        text = f'{head}[arrivals]\nkind = "poisson"\nrate = "{rate}"\n\n[retry]{rest}'
    return text


@pytest.mark.slow
def test_an_hour_under_a_fault_storm_loses_nothing(tmp_path, monkeypatch):
    sc = loads(storm_text(), str(STORM))
    pricer = make_pricer(sc)
    out = ResultsDir.create(tmp_path, sc.name, dt.datetime.now(dt.timezone.utc))
    out.write_scenario(sc.source)
    state = WatchedRun(sc, VirtualClock(), out)

    after: dict = {}
    real_drive = virtual_mod.drive

    async def drive(*args, **kwargs):
        await real_drive(*args, **kwargs)
        after["tasks"] = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        after["blocks"] = live_blocks()

    monkeypatch.setattr(virtual_mod, "drive", drive)
    try:
        run_virtual(state, pricer, EmulatorConfig.from_mapping(sc.emulator, source=str(STORM)), signals=False)
    finally:
        out.close()
    summary = state.metrics.summary(run_facts(sc, state.clock, state.wall0, state.runner.stop_reason))
    lines = [json.loads(x) for x in (out.path / "requests.jsonl").read_text().splitlines()]

    # the run went the distance, through the storm it was meant to meet
    assert summary["stopped"] == "completed" and state.clock.now() >= sc.duration
    codes = Counter(x["error_code"] for x in lines)
    statuses = Counter(x["status"] for x in lines)
    assert statuses["throttled"] > 200 and statuses["timeout"] > 20 and statuses["error"] > 200, statuses
    for code in ("ThrottlingException", "InternalServerException", "ServiceUnavailableException",
                 "ValidationException", "ModelStreamErrorException", "ConnectionError", "ClientTimeout"):
        assert codes[code] > 0, code

    # every attempt is a line, and the summary counts exactly the lines
    total_sent = 0
    for name, arm in summary["arms"].items():
        r = arm["requests"]
        mine = [x for x in lines if x["arm"] == name]
        assert r["sent"] == len(mine) == r["ok"] + r["throttled"] + r["error"] + r["timeout"], name
        assert r["retries"] == sum(1 for x in mine if x["attempt"] > 1), name
        total_sent += r["sent"]
    assert total_sent == len(lines) > 9000

    # every request's attempts are 1..k, and only the last may end it
    tries: dict[tuple, list[dict]] = defaultdict(list)
    for x in lines:
        tries[(x["arm"], x["session"], x["turn"])].append(x)
    assert {len(v) for v in tries.values()} <= {1, 2, 3}
    for key, v in tries.items():
        v.sort(key=lambda x: x["attempt"])
        assert [x["attempt"] for x in v] == list(range(1, len(v) + 1)), key
        assert len({x["intended"] for x in v}) == 1, key
        for x in v[:-1]:
            assert x["status"] in RETRYABLE or x["error_code"] in SERVER_CODES, (key, x)
    per_arm = Counter(k[0] for k in tries)
    assert per_arm["global"] == per_arm["geo"]  # both arms got every request of the schedule

    # cost: each record's cost is its tokens priced, and the records add up to the summary
    ttl = {a.name: a.cache_ttl for a in sc.arms}
    for x in lines:
        usage = {"inputTokens": x["input_tokens"], "outputTokens": x["output_tokens"],
                 "cacheReadInputTokens": x["cache_read"], "cacheWriteInputTokens": x["cache_write"],
                 "cacheDetails": [{"ttl": t, "inputTokens": n} for t, n in
                                  (("5m", x["cache_write_5m"]), ("1h", x["cache_write_1h"])) if n]}
        priced = pricer(x["model_id"], usage, ttl[x["arm"]])["total"] if x["input_tokens"] + x["cache_read"] \
            + x["cache_write"] + x["output_tokens"] else 0.0
        assert abs(priced - x["cost_usd"]) <= 1e-9, x
    for name, arm in summary["arms"].items():
        assert abs(sum(x["cost_usd"] for x in lines if x["arm"] == name) - arm["cost_usd"]["total"]) <= 1e-9
    assert summary["arms"]["global"]["cost_usd"]["total"] > 1.0

    # nothing left running, nothing piling up
    assert after["tasks"] == []
    assert state.blocks_at_half is not None
    grown = after["blocks"] - state.blocks_at_half
    assert grown < BLOCKS_PER_ARM_SECOND * len(sc.arms) * sc.duration / 2 + BLOCKS_SLACK, grown
