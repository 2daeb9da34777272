"""Shared plumbing for the `loadgen run` benchmarks (not a benchmark itself).

The layout every benchmark uses on a 2-core machine:

  core 0: the emulator, `python -m loadgen emulator --config <fast, quotas off>`, in
          its own process (its first stdout line carries the URL);
  core 1: the generator under test, one fresh child process per case, so each case
          starts with a clean heap and its RSS and CPU time are its own.

A child prints one JSON object as its last stdout line; `run_child` returns it.
Nothing here reaches beyond 127.0.0.1, and the AWS credentials are dummies.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parent.parent
MODEL_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
REGION = "us-east-1"

# The emulator in its fastest mode: no modelled latency, no quotas, no Region
# capacity, so every request is served as fast as the server can.
EMULATOR_CONFIG = """\
[emulator]
latency = "fast"

[emulator.quotas]
tpm = 0

[emulator.quotas.geo]
tpm = 0

[emulator.quotas.global]
tpm = 0

[emulator.routing]
region_capacity_tpm = 0
"""

# Dummy credentials for the emulator: never real keys. The metadata service and
# shared config files are switched off so botocore never looks further.
CHILD_ENV = {
    "AWS_ACCESS_KEY_ID": "loadgen-bench",
    "AWS_SECRET_ACCESS_KEY": "loadgen-bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def cores() -> int:
    return os.cpu_count() or 1


def pin(core: int) -> None:
    """Pin this process to one core (where the OS allows and there is more than one)."""
    if hasattr(os, "sched_setaffinity") and cores() > 1:
        os.sched_setaffinity(0, {core % cores()})


def cpu_seconds() -> float:
    """User + system CPU seconds this process has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    """Current resident set size in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


@contextlib.contextmanager
def emulator(core: int = 0, config: str = EMULATOR_CONFIG) -> Iterator[str]:
    """Start `loadgen emulator` pinned to `core`; yield its URL; stop it (SIGINT) after."""
    with tempfile.TemporaryDirectory(prefix="loadgen-bench-") as d:
        cfg = Path(d) / "emulator.toml"
        cfg.write_text(config)
        cmd = [sys.executable, "-m", "loadgen", "emulator", "--port", "0", "--config", str(cfg)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                cwd=REPO, preexec_fn=lambda: pin(core))
        try:
            line = proc.stdout.readline()
            m = re.search(r"https?://\S+", line)
            if not m:
                raise RuntimeError(f"the emulator did not print its URL; first line was {line!r}")
            yield m.group(0)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def load_average() -> str:
    """The 1, 5 and 15 minute load averages ("n/a" where the OS has none): how busy the
    machine was around a measurement."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_child(script: str, args: list[str], timeout: float = 600.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python script args` (a benchmark's child mode) and return its last stdout line as JSON.
    `env`: variables added to the child's environment."""
    env = {**os.environ, **CHILD_ENV, **(env or {})}
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    lines = [ln for ln in out.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {' '.join(args)} printed no JSON:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def emit(result: dict[str, Any]) -> None:
    """A child's result: one JSON line on stdout."""
    print(json.dumps(result), flush=True)


def _num(x: float) -> str:
    """A number as the scenario parser reads it: plain decimals, never 1e+06."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def scenario_text(*, rate: float, duration_s: float, max_in_flight: int, stream: bool = False,
                  prefix_tokens: int = 64, question_tokens: int = 12, output_tokens: int = 16,
                  kind: str = "constant", cache: bool = True, max_tokens: int = 256) -> str:
    """An open-loop, single-turn, one-arm scenario aimed at the emulator at `url` (set later)."""
    return textwrap.dedent(f"""\
        name = "bench"
        seed = 1
        duration = "{_num(duration_s)}s"

        [target]
        kind = "aws"
        region = "{REGION}"
        max_in_flight = {max_in_flight}
        request_timeout = "120s"

        [model]
        id = "{MODEL_ID}"
        max_tokens = {max_tokens}
        stream = {"true" if stream else "false"}

        [workload]
        kind = "single"
        prefix_tokens = {prefix_tokens}
        question_tokens = {question_tokens}
        output_tokens = {output_tokens}

        [arrivals]
        kind = "{kind}"
        rate = "{_num(rate)}/s"

        [[arms]]
        name = "a"
        cache = {"true" if cache else "false"}
        """)


def load_scenario(text: str, endpoint_url: str):
    """Parse scenario text and point it at the emulator (as `--target aws --endpoint-url` does)."""
    import dataclasses

    from loadgen.scenario import loads

    sc = loads(text, "<bench>")
    return dataclasses.replace(sc, target=dataclasses.replace(sc.target, endpoint_url=endpoint_url))


def fmt_ratio(x: float, base: float) -> str:
    return f"{x / base:.2f} x" if base else "n/a"
