"""Clients going away is normal for a load target: the emulator logs no traceback for a
client timeout, a closed connection or its own reset fault, and still settles the quota."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import textwrap
from pathlib import Path

import aiohttp

from loadgen.commands.cli import main
from loadgen.engine.clock import RealClock
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
PATH = "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/"
BODY = {"messages": [{"role": "user", "content": [{"text": "Hi. Reply with about 200 tokens."}]}],
        "inferenceConfig": {"maxTokens": 300}}


def noisy(records: list[logging.LogRecord]) -> list[str]:
    """ERROR records with a traceback, and aiohttp's per-request error lines."""
    return [f"{r.name}: {r.getMessage()}" for r in records
            if r.levelno >= logging.ERROR and (r.exc_info or "Error handling request" in r.getMessage())]


def test_client_closing_mid_stream_logs_nothing_and_settles_the_quota(caplog):
    caplog.set_level(logging.DEBUG)

    async def go():
        clock = RealClock()
        # one 4-token delta every 0.1 s: the client is long gone before the stream ends
        cfg = EmulatorConfig.from_mapping({"latency": {"preset": "fast", "tokens_per_s": 40}})
        model = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
        async with serve(model, clock) as url:
            for _ in range(3):
                async with aiohttp.ClientSession() as s:
                    async with s.post(url + PATH + "converse-stream", json=BODY) as r:
                        assert r.status == 200
                        await r.content.readany()        # the first events, then hang up
                        r.close()
            await asyncio.sleep(0.35)                    # the server's next writes find no client
            # finish() ran: the charge is input + delivered output x 5, not the reservation
            used = model.quota_used("us." + HAIKU)
            reserved = 3 * (8 + 300)
            assert 0 < used < reserved, used
            assert not model._open
    asyncio.run(go())
    assert noisy(caplog.records) == []


def test_reset_fault_leaves_no_traceback(caplog):
    caplog.set_level(logging.DEBUG)

    async def go():
        clock = RealClock()
        cfg = EmulatorConfig.from_mapping({"latency": "fast", "faults": {"connection_reset_rate": 1.0}})
        model = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
        async with serve(model, clock) as url:
            for op in ("converse", "converse-stream", "converse", "converse-stream"):
                async with aiohttp.ClientSession() as s:
                    try:
                        async with s.post(url + PATH + op, json=BODY) as r:
                            await r.read()
                    except aiohttp.ClientError:
                        pass                             # the point of the fault
            await asyncio.sleep(0.05)
            assert not model._open
    asyncio.run(go())
    assert noisy(caplog.records) == []


TIMEOUT = f"""
name = "timeouts"
seed = 5
duration = "12s"

[target]
time_scale = 4                     # the 2 s timeout is 0.5 s of real time: room for a busy machine
request_timeout = "2s"

[model]
id = "us.{HAIKU}"
max_tokens = 400
stream = true

[workload]
kind = "single"
prefix_tokens = 10
question_tokens = 20
output_tokens = 200

[arrivals]
kind = "constant"
rate = "1/s"

[retry]
policy = "off"

[emulator]
# ttft 0.6 s, then a delta every 0.2 s for 10 s: requests time out mid-stream at 2 s
latency = {{ preset = "realistic", ttft_sigma = 0, tokens_per_s = 20, tokens_per_s_sigma = 0 }}

[[arms]]
name = "a"
cache = false
"""


def test_run_whose_client_times_out_mid_stream_logs_no_server_traceback(tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    sc = tmp_path / "t.toml"
    sc.write_text(textwrap.dedent(TIMEOUT))
    assert main(["run", str(sc), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    d = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    lines = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines() if x.strip()]
    assert len(lines) >= 9 and {x["status"] for x in lines} == {"timeout"}
    # mid-stream, not before it (on a loaded machine a few may time out before the first
    # token: the timeout runs in real time x 4)
    assert sum(x["first_token"] is not None for x in lines) >= len(lines) / 2
    assert noisy(caplog.records) == []
