"""Emulator throughput on one core ("fast" latency), non-streaming and streaming.

The server runs in its own process pinned to one core; the load comes from another
process (pinned to the other core where there is one), a raw aiohttp client keeping
`--concurrency` requests in flight for `--seconds`. A bare aiohttp "hello" handler,
measured the same way in the same run, is the baseline: the ratio says how much of the
ceiling is the emulator's own work rather than aiohttp's HTTP handling.

    python benchmarks/bench_emulator.py [--seconds 5] [--concurrency 64]

Prints requests/s per case and the ratio to the baseline. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time

BODY = {
    "system": [{"text": "p" * 4 * 5000}, {"cachePoint": {"type": "default"}}],
    "messages": [{"role": "user", "content": [{"text": "What now? Reply with about 50 tokens."}]}],
    "inferenceConfig": {"maxTokens": 512},
}
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1%3A0"


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {core % os.cpu_count()})


def serve(kind: str) -> None:
    """Child: run a server on an ephemeral port, print its URL, serve until stdin closes."""
    _pin(0)
    from aiohttp import web

    async def main() -> None:
        if kind == "hello":
            async def hello(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(body=b'{"hello":"world"}', content_type="application/json")
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/{tail:.*}", hello)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
            await site.start()
            print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        else:
            from loadgen.engine.clock import RealClock
            from loadgen.emulator.config import EmulatorConfig
            from loadgen.emulator.model import EmulatorModel
            from loadgen.emulator.server import serve as emu_serve
            clock = RealClock()
            # quotas off: the benchmark measures the server, not throttling
            cfg = EmulatorConfig.from_mapping({"latency": "fast", "quotas": {"tpm": 0, "geo": {"tpm": 0}},
                                               "routing": {"region_capacity_tpm": 0}})
            model = EmulatorModel(cfg, clock=clock, rng=random.Random(0))
            cm = emu_serve(model, clock)
            url = await cm.__aenter__()
            print(url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)

    asyncio.run(main())


def load(url: str, stream: bool, seconds: float, concurrency: int) -> None:
    """Child: drive the server and print JSON {requests, seconds, errors}."""
    _pin(1)
    import aiohttp

    path = f"/model/{MODEL}/converse-stream" if stream else f"/model/{MODEL}/converse"
    payload = json.dumps(BODY).encode()

    async def main() -> None:
        done = errors = 0
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as s:
            # warm-up (writes the cache entry)
            async with s.post(url + path, data=payload) as r:
                await r.read()
            stop = time.perf_counter() + seconds
            t0 = time.perf_counter()

            async def worker() -> None:
                nonlocal done, errors
                while time.perf_counter() < stop:
                    async with s.post(url + path, data=payload,
                                      headers={"Content-Type": "application/json"}) as r:
                        await r.read()
                        if r.status == 200:
                            done += 1
                        else:
                            errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - t0
        print(json.dumps({"requests": done, "seconds": elapsed, "errors": errors}), flush=True)

    asyncio.run(main())


def measure(kind: str, stream: bool, seconds: float, concurrency: int) -> float:
    srv = subprocess.Popen([sys.executable, __file__, "--serve", kind], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        url = srv.stdout.readline().strip()
        out = subprocess.run([sys.executable, __file__, "--load", url, "--seconds", str(seconds),
                              "--concurrency", str(concurrency)] + (["--stream"] if stream else []),
                             capture_output=True, text=True, check=True, timeout=seconds + 60)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        if res["errors"]:
            print(f"  warning: {res['errors']} non-200 responses", file=sys.stderr)
        return res["requests"] / res["seconds"]
    finally:
        srv.stdin.close()
        srv.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    ap.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(a.serve)
    if a.load:
        return load(a.load, a.stream, a.seconds, a.concurrency)
    print(f"cores: {os.cpu_count()}; {a.seconds:g} s per case, {a.concurrency} in flight; "
          f"request: 5000-token cached prefix, 50 output tokens (13 stream deltas)")
    base = measure("hello", False, a.seconds, a.concurrency)
    print(f"baseline  aiohttp hello handler   {base:8.0f} req/s")
    for stream in (False, True):
        rps = measure("emulator", stream, a.seconds, a.concurrency)
        name = "converse-stream" if stream else "converse       "
        print(f"emulator  {name}         {rps:8.0f} req/s  ({rps / base:.2f} x baseline)")


if __name__ == "__main__":
    main()
