"""Peer benchmark: loadgen against awslabs LLMeter, same emulator, same request body, same
concurrency, each on one core.

LLMeter (PyPI `llmeter`) is installed by this script into a venv of its own under the
user's cache directory (`--venv`, default ~/.cache/loadgen-bench/llmeter-<version>):
it is never a dependency of loadgen. Its Bedrock endpoint classes (`BedrockConverse`,
`BedrockConverseStream`) call a boto3 `bedrock-runtime` client; boto3 reads
`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, so the child sets that to the emulator's URL and
hands LLMeter a client made with a connection pool as large as the concurrency (the
default pool of 10 would make LLMeter reconnect above 10 clients). Everything else is
LLMeter's default: its `Runner` with `clients` threads, `n_requests` each, results
written to an output folder (as loadgen writes requests.jsonl), progress bars off.

Layout as the other benchmarks: the emulator ("fast", quotas off) on core 0; each case a
fresh process on core 1:

  bare      aiobotocore loop (bench_generator.py's baseline), for the ceiling and the
            deltas per response;
  loadgen   the whole `loadgen run` path (bench_generator.py's loadgen case): open loop
            over the ceiling, `max_in_flight` = the concurrency;
  llmeter   LLMeter's Runner, `clients` = the concurrency, the same body (loadgen's
            request 0; LLMeter sets the modelId).

Printed: requests/s, CPU us per request, for streaming contentBlockDelta events per
CPU-second, and loadgen / LLMeter ratios (best of `--repeat` rounds, by CPU per request).

    python benchmarks/bench_llmeter.py [--stream] [--seconds 8] [--concurrency 32] [--repeat 2]

Loopback only; dummy credentials. The first run installs LLMeter (a minute or two).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_generator.py")
LLMETER_VERSION = "0.2.0"

# Runs in LLMeter's venv (no loadgen there): argv = url, payload.json, clients, n per client, stream, out dir.
LLMETER_CHILD = textwrap.dedent("""\
    import asyncio, json, os, resource, sys, time
    url, payload_file, clients, n, stream, out = sys.argv[1:7]
    clients, n, stream = int(clients), int(n), stream == "1"
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = url
    import boto3
    from botocore.config import Config
    from llmeter.endpoints.bedrock import BedrockConverse, BedrockConverseStream
    from llmeter.runner import Runner

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    payload = json.load(open(payload_file))
    client = boto3.client("bedrock-runtime", region_name="us-east-1",
                          config=Config(max_pool_connections=max(10, clients)))
    cls = BedrockConverseStream if stream else BedrockConverse
    endpoint = cls(model_id=payload.pop("modelId"), region="us-east-1", bedrock_boto3_client=client)
    for _ in range(20):  # warm-up, as the other cases do: connections, first-call imports
        endpoint.invoke(payload)
    runner = Runner(endpoint, output_path=out, disable_per_client_progress_bar=True,
                    disable_clients_progress_bar=True)
    cpu0, t0 = cpu(), time.perf_counter()
    result = asyncio.run(runner.run(payload=payload, clients=clients, n_requests=n))
    wall, used = time.perf_counter() - t0, cpu() - cpu0
    done = len(result.responses) if result.responses is not None else clients * n
    failed = result.stats.get("failed_requests") or 0
    print(json.dumps({"requests": done, "failed": failed, "wall_s": wall, "cpu_s": used, "rps": done / wall,
                      "cpu_us_per_req": used / done * 1e6}))
    """)


def llmeter_python(venv: Path, version: str) -> Path:
    """The venv's python with LLMeter `version` installed (made on first use)."""
    py = venv / "bin" / "python"
    stamp = venv / f".llmeter-{version}"
    if not stamp.exists():
        print(f"installing llmeter {version} into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"llmeter=={version}"], check=True)
        stamp.write_text("")
    return py


def run_llmeter(py: Path, url: str, params: dict, clients: int, n: int, stream: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-llmeter-") as d:
        pf = Path(d) / "payload.json"
        pf.write_text(json.dumps(params))
        script = Path(d) / "child.py"
        script.write_text(LLMETER_CHILD)
        env = {**os.environ, **C.CHILD_ENV}
        env.pop("PYTHONPATH", None)
        out = subprocess.run([str(py), str(script), url, str(pf), str(clients), str(n), "1" if stream else "0",
                              str(Path(d) / "out")], capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"llmeter child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    res = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    if res["failed"]:
        raise RuntimeError(f"llmeter: {res['failed']} of {res['requests']} requests failed")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="about this long per case (default 8)")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight / LLMeter clients (default 32)")
    ap.add_argument("--stream", action="store_true", help="converse_stream (default: converse)")
    ap.add_argument("--output-tokens", type=int, default=0,
                    help="tokens per answer (default: 16 for converse, 256 for streams: 64 deltas)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds (default 2)")
    ap.add_argument("--llmeter-version", default=LLMETER_VERSION, help=f"default {LLMETER_VERSION}")
    ap.add_argument("--venv", type=Path, default=None,
                    help="where LLMeter's venv goes (default ~/.cache/loadgen-bench/llmeter-<version>)")
    a = ap.parse_args()
    out_tokens = a.output_tokens or (256 if a.stream else 16)
    venv = a.venv or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "loadgen-bench" / \
        f"llmeter-{a.llmeter_version}"
    py = llmeter_python(venv, a.llmeter_version)

    common = ["--seconds", str(a.seconds), "--concurrency", str(a.concurrency), "--prefix-tokens", "64",
              "--output-tokens", str(out_tokens)] + (["--stream"] if a.stream else [])
    print(f"cores: {C.cores()}; emulator on core 0, each case on core 1; {a.concurrency} in flight, "
          f"{'converse_stream' if a.stream else 'converse'}, {out_tokens}-token answers; llmeter {a.llmeter_version}; "
          f"load average {C.load_average()}")
    rounds: dict[str, list[dict]] = {"bare": [], "loadgen": [], "llmeter": []}
    with C.emulator() as url:
        sc = C.load_scenario(C.scenario_text(rate=1, duration_s=60, max_in_flight=a.concurrency, stream=a.stream,
                                             prefix_tokens=64, output_tokens=out_tokens), url)
        from loadgen.engine.workload import ArmWorkload, draw_sizes
        import random
        params = ArmWorkload(sc, sc.arms[0]).single(0, draw_sizes(sc, random.Random(0))).params
        for r in range(a.repeat):
            bare = C.run_child(GEN, ["--child", "bare", "--url", url, *common])
            rounds["bare"].append(bare)
            rounds["loadgen"].append(C.run_child(GEN, ["--child", "loadgen", "--url", url, *common,
                                                       "--rate", str(1.5 * bare["rps"])]))
            n = max(20, int(bare["rps"] * a.seconds / a.concurrency))
            rounds["llmeter"].append(run_llmeter(py, url, params, a.concurrency, n, a.stream))
            lg, lm = rounds["loadgen"][-1], rounds["llmeter"][-1]
            print(f"round {r + 1}: " + "  ".join(f"{k} {x[-1]['rps']:6.0f} req/s {x[-1]['cpu_us_per_req']:5.0f} us CPU/req"
                                                 for k, x in rounds.items())
                  + f"   loadgen/llmeter CPU {lm['cpu_us_per_req'] / lg['cpu_us_per_req']:.2f} x", flush=True)
    per = rounds["bare"][0].get("deltas_per_req", 0.0) if a.stream else 0.0
    best = {k: min(v, key=lambda x: x["cpu_us_per_req"]) for k, v in rounds.items()}
    print(f"\nbest of {a.repeat} rounds by CPU per request" + (f"; {per:.1f} deltas per response" if a.stream else ""))
    for k, x in best.items():
        line = f"  {k:8s} {x['rps']:7.0f} req/s  {x['cpu_us_per_req']:6.0f} us CPU/req"
        if a.stream:
            line += f"  {per * 1e6 / x['cpu_us_per_req']:8.0f} deltas per CPU-second"
        print(line)
    lg, lm = best["loadgen"], best["llmeter"]
    print(f"loadgen vs LLMeter: {lg['rps'] / lm['rps']:.2f} x requests/s, {lm['cpu_us_per_req'] / lg['cpu_us_per_req']:.2f} x "
          f"less CPU per request" + (" (= deltas per CPU-second)" if a.stream else ""))
    print(f"load average after: {C.load_average()}")


if __name__ == "__main__":
    main()
