"""Emulator throughput and CPU per request on one core ("fast" latency).

The server runs in its own process pinned to one core; the load comes from another
process (pinned to the other core where there is one), a raw aiohttp client keeping
`--concurrency` requests in flight for `--seconds`, each request signed-looking (an
`Authorization` header with a SigV4 credential scope, as botocore sends). A bare aiohttp
"hello" handler, measured the same way in the same run, is the baseline: the ratio says
how much of the cost is the emulator's own work rather than aiohttp's HTTP handling.

Cases: `converse small`, the request `bench_workers.py` sends (64-token prefix with a
cachePoint, a 12-token question, 16 output tokens), each with its own question as
loadgen's are; `converse` and `converse-stream` with a 5,000-token cached prefix and 50
output tokens (13 stream deltas).

    python benchmarks/bench_emulator.py [--seconds 5] [--concurrency 64] [--repeat 1] [--cases small,converse,stream]

Prints per case requests/s and the server's CPU microseconds per request (from
/proc/<pid>/stat: on a shared machine read CPU per request, not requests/s), both
against the baseline of the same round, with the load average. Loopback only.
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
# the request bench_workers.py sends (loadgen's single-turn workload, 64-token prefix);
# the question differs from request to request, as loadgen's do
SMALL_PREFIX = ("[loadgen scenario=bench-workers arm=a] You are a careful assistant. Context follows.    shipment "
                "call event event query approve history summary record retry index verify call stream model budget "
                "policy approve status forecast cache history stream record wi")


def small_body(i: int) -> dict:
    return {"system": [{"text": SMALL_PREFIX}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": f"Q{i}: region windo Reply with about 16 tokens."}]}],
            "inferenceConfig": {"maxTokens": 256}}


MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1%3A0"
# what a SigV4-signing client sends (the server reads the credential scope's Region)
AUTH = ("AWS4-HMAC-SHA256 Credential=loadgen-bench/20261202/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


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


def load(url: str, stream: bool, seconds: float, concurrency: int, small: bool) -> None:
    """Child: drive the server and print JSON {requests, seconds, errors}."""
    _pin(1)
    import aiohttp

    path = f"/model/{MODEL}/converse-stream" if stream else f"/model/{MODEL}/converse"
    payload = json.dumps(BODY).encode()
    headers = {"Content-Type": "application/json", "Authorization": AUTH}
    counter = iter(range(10**9))

    def body() -> bytes:
        return json.dumps(small_body(next(counter))).encode() if small else payload

    async def main() -> None:
        done = errors = 0
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as s:
            # warm-up (writes the cache entry)
            async with s.post(url + path, data=body(), headers=headers) as r:
                await r.read()
            stop = time.perf_counter() + seconds
            t0 = time.perf_counter()

            async def worker() -> None:
                nonlocal done, errors
                while time.perf_counter() < stop:
                    async with s.post(url + path, data=body(), headers=headers) as r:
                        await r.read()
                        if r.status == 200:
                            done += 1
                        else:
                            errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - t0
        print(json.dumps({"requests": done, "seconds": elapsed, "errors": errors}), flush=True)

    asyncio.run(main())


def measure(kind: str, stream: bool, seconds: float, concurrency: int, small: bool = False) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of one case."""
    srv = subprocess.Popen([sys.executable, __file__, "--serve", kind], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True)
    try:
        url = srv.stdout.readline().strip()
        cpu0 = _cpu_s(srv.pid)
        out = subprocess.run([sys.executable, __file__, "--load", url, "--seconds", str(seconds),
                              "--concurrency", str(concurrency)] + (["--stream"] if stream else [])
                             + (["--small"] if small else []),
                             capture_output=True, text=True, check=True, timeout=seconds + 60)
        cpu = _cpu_s(srv.pid) - cpu0
        res = json.loads(out.stdout.strip().splitlines()[-1])
        if res["errors"]:
            print(f"  warning: {res['errors']} non-200 responses", file=sys.stderr)
        n = res["requests"] + res["errors"] + 1  # + the warm-up request
        return res["requests"] / res["seconds"], 1e6 * cpu / n
    finally:
        srv.stdin.close()
        srv.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (each with its own baseline)")
    ap.add_argument("--cases", default="small,converse,stream", help="which cases (comma-separated)")
    ap.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--small", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve(a.serve)
    if a.load:
        return load(a.load, a.stream, a.seconds, a.concurrency, a.small)
    print(f"cores: {os.cpu_count()}; {a.seconds:g} s per case, {a.concurrency} in flight; "
          f"load average {os.getloadavg()[0]:.2f}")
    for rnd in range(a.repeat):
        base, base_cpu = measure("hello", False, a.seconds, a.concurrency)
        print(f"round {rnd + 1}: baseline aiohttp hello handler  {base:7.0f} req/s  {base_cpu:5.0f} us CPU/request")
        for key, name, stream, small in (("small", "converse small", False, True), ("converse", "converse", False, False),
                                         ("stream", "converse-stream", True, False)):
            if key not in a.cases.split(","):
                continue
            rps, cpu = measure("emulator", stream, a.seconds, a.concurrency, small)
            print(f"  emulator {name:16s} {rps:7.0f} req/s ({rps / base:.2f} x baseline)  {cpu:5.0f} us CPU/request "
                  f"({cpu / base_cpu:.2f} x baseline)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
