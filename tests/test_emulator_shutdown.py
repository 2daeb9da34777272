"""`loadgen emulator` stops promptly on SIGTERM / SIGINT, also with streams open.

A load target is stopped mid-load on purpose (and by CI between tests): it must not
wait for minute-long modelled streams, nor ignore the signal.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

PATH = "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/"
BODY = {"messages": [{"role": "user", "content": [{"text": "Hi. Reply with about 200 tokens."}]}],
        "inferenceConfig": {"maxTokens": 400}}

# Every stream is slow (x40: about a minute each), half of them fault mid-stream, some
# connections are reset: the mix that used to hold the process for most of a minute.
CONFIG = """
latency = "realistic"
faults = { slow_stream_rate = 1.0, slow_stream_factor = 40, mid_stream_rate = 0.5, connection_reset_rate = 0.2 }
"""


def start_emulator(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    cfg = tmp_path / "emu.toml"
    cfg.write_text(CONFIG)
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--port", "0", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "http://127.0.0.1:" in line, line + proc.stderr.read()
    return proc, line.strip().split()[-1]


async def open_streams(url: str, n: int) -> list:
    """n streams and n Converse calls in flight, each having received at most its headers."""
    session = aiohttp.ClientSession()
    pending = []
    for i in range(n):
        pending.append(asyncio.ensure_future(session.post(url + PATH + "converse-stream", json=BODY)))
        pending.append(asyncio.ensure_future(session.post(url + PATH + "converse", json=BODY)))
    await asyncio.sleep(0.5)  # all requests are in the server's hands
    return [session, pending]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_emulator_stops_promptly_with_open_streams(tmp_path, sig):
    proc, url = start_emulator(tmp_path)
    try:
        async def go() -> float:
            session, pending = await open_streams(url, 8)
            t0 = time.monotonic()
            proc.send_signal(sig)
            while proc.poll() is None and time.monotonic() - t0 < 10:
                await asyncio.sleep(0.02)
            took = time.monotonic() - t0
            for f in pending:
                f.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await session.close()
            return took

        took = asyncio.run(go())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    err = proc.stderr.read()
    # Idle it takes 1.1 s: the 0.5 s shutdown grace, then moto's S3 server stopping
    # (werkzeug polls). Loaded 2-core machines have taken 2-3.5 s. What this guards
    # against held the process for most of a minute (the modelled streams' length).
    assert took < 5.0, f"took {took:.1f} s to stop; stderr: {err}"
    assert proc.returncode == 0, err
    assert "stopping" in err and "Traceback" not in err, err
