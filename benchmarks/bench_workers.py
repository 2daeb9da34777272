"""Open-loop throughput ceiling of `loadgen run --workers 1` vs `--workers 2` (and more).

Each case runs the real CLI (`python -m loadgen run`) on one open-loop scenario whose
constant rate is far above what the machine can send (so the generator runs flat out,
behind its schedule) until `--max-requests`, `max_in_flight` per arm per worker, the emulator on "fast"
latency with quotas and Region capacity off. The ceiling is the attempts sent divided
by the wall span between the first and the last send (`wall_start` in requests.jsonl),
so process start-up and the end-of-run report are not counted.

  builtin   (default) the built-in emulator as a user runs it: in the generator's own
            process with --workers 1, in one process of its own with --workers N > 1
  endpoint  a separate `loadgen emulator` process for every case (`--endpoint-url`):
            the same target for 1 and N workers, on the real clock

The cases alternate (1, N, 1, N, ...) `--repeat` times; the best of each is compared and
the spread printed, with the load average (the machine may be shared). The ratio of
the last round (one case of each, back to back) is printed as well.

CPU per request, per process: while a case runs, the benchmark reads the CPU time and
context switches of the `loadgen run` process and of each of its children
(/proc/<pid>/stat and task/*/status, every SAMPLE_S) and charges each process what it
used between the first and the last send, divided by the attempts sent: the parent
(generator and, with 1 worker, the in-process emulator), the emulator process (the
child with a listening socket; N > 1) and the local workers together (Ray actors are
not children of the run: their CPU is not counted). On a loaded machine read these,
not requests/s; `cores busy` says how much of the machine the run got.

`--cluster ray` compares N local worker processes with N Ray actors instead (`run
--workers N` against `run --workers N --cluster ray`, alternating): the benchmark starts
one local Ray with N CPUs, every Ray case joins it (RAY_ADDRESS), so Ray's start-up is
not counted, and the benchmark stops it at the end.

    python benchmarks/bench_workers.py [--workers 2] [--requests 8000] [--repeat 2] [--mode builtin|endpoint]
                                       [--cluster ray]

Loopback only; dummy credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SCENARIO = """\
name = "bench-workers"
seed = 1
duration = "{duration}s"

[target]
region = "{region}"
max_in_flight = {in_flight}
time_scale = 1

[model]
id = "{model}"
max_tokens = 256
stream = false

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = 12
output_tokens = 16

[arrivals]
kind = "constant"
rate = "{rate}/s"

[[arms]]
name = "a"

{emulator}
"""


SAMPLE_S = 0.05
LOOK_EVERY_S = 1.0   # seconds between looks for the emulator's listening socket, per process
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc(pid: int) -> tuple[tuple[float, int, int], int, str] | None:
    """((CPU seconds, voluntary and involuntary context switches of its threads), start
    time in ticks, cmdline) of `pid`, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        vol = invol = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
    except (OSError, ValueError):
        return None
    # fields[0] is the state (field 3): utime is field 14, stime 15, starttime 22
    return ((int(fields[11]) + int(fields[12])) / _TICK, vol, invol), int(fields[19]), cmd


def _machine() -> tuple[float, float, float]:
    """CPU seconds since boot of all cores: (busy, of which interrupts and softirq, of which
    stolen by the hypervisor), from /proc/stat (busy: all but idle and iowait). Loopback
    TCP is processed in softirq, which is not always charged to the process that sent."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0, 0.0
    return (sum(v[:8]) - v[3] - v[4]) / _TICK, (v[5] + v[6]) / _TICK, v[7] / _TICK


def _listens(pid: int) -> bool:
    """Whether `pid` holds a listening TCP socket (/proc/net/tcp state 0A)."""
    try:
        inodes = set()
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(name) as f:
                next(f)
                inodes |= {cols[9] for cols in (ln.split() for ln in f) if cols[3] == "0A"}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    except (OSError, StopIteration):
        pass
    return False


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


ROLES = ("parent", "emulator", "worker")


class CpuSampler:
    """Every SAMPLE_S: (Unix time, {pid: (CPU s, voluntary, involuntary switches)}) for a
    process and its children; pid 0 holds the whole machine's busy CPU seconds."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.samples: list[tuple[float, dict[int, tuple[float, int, int]]]] = []
        self.info: dict[int, tuple[int, str]] = {}   # pid -> (start ticks, cmdline)
        self.listening: set[int] = set()   # children with a listening TCP socket: the emulator
        self._looked: dict[int, float] = {}  # pid -> when it was last looked at for a listener
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            seen: dict[int, tuple[float, float, float]] = {0: _machine()}
            for pid in [self.root, *_children(self.root)]:
                r = _proc(pid)
                if r is not None:
                    seen[pid] = r[0]
                    # the latest: read between fork and exec, a child shows its parent's cmdline
                    self.info[pid] = (r[1], r[2])
                    if pid != self.root and not self.listening and now - self._looked.get(pid, 0.0) >= LOOK_EVERY_S:
                        # reading /proc/net/tcp and a process's fds costs kernel time that
                        # grows with the sockets open (thousands in TIME_WAIT after a few
                        # rounds): looked at every sample it took most of a core from the
                        # run measured. One emulator per run: stop looking once it is found.
                        self._looked[pid] = now
                        if _listens(pid):
                            self.listening.add(pid)
            self.samples.append((now, seen))
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, t0: float, t1: float) -> dict[int, tuple[float, int, int]]:
        """What each process used between the samples nearest Unix times t0 and t1."""
        def at(t: float) -> dict[int, tuple[float, int, int]]:
            return min(self.samples, key=lambda s: abs(s[0] - t))[1]
        a, b = at(t0), at(t1)
        return {pid: tuple(x - y for x, y in zip(v, a.get(pid, (0.0, 0, 0)))) for pid, v in b.items()}

    def roles(self) -> dict[int, str]:
        """pid -> parent | emulator | worker | other (the resource tracker) | machine."""
        out = {pid: "other" for pid in self.info}
        out[0] = "machine"
        out[self.root] = "parent"
        for pid, (_, cmd) in self.info.items():
            if pid != self.root and "resource_tracker" not in cmd:
                out[pid] = "emulator" if pid in self.listening else "worker"
        return out


def ceiling(workers: int, a: argparse.Namespace, work: Path, url: str | None, ray_address: str | None = None) -> dict:
    """One `loadgen run` case: attempts, wall span of the sends, requests/s (`ray_address`:
    the segments as actors of that Ray, `--cluster ray`)."""
    sc = work / "bench.toml"
    sc.write_text(SCENARIO.format(duration=max(60, 2 * a.requests / a.rate), region=C.REGION, in_flight=a.concurrency, model=C.MODEL_ID,
                                  rate=a.rate, emulator=C.EMULATOR_CONFIG if url is None else ""))
    out = work / f"res-{workers}-{len(list(work.glob('res-*')))}"
    cmd = [sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--quiet", "--workers", str(workers),
           "--max-requests", str(a.requests)]
    if url is not None:
        cmd += ["--endpoint-url", url]
    env = {**os.environ, **C.CHILD_ENV}
    if ray_address is not None:
        cmd += ["--cluster", "ray"]
        env["RAY_ADDRESS"] = ray_address
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env, cwd=C.REPO)
        sampler = CpuSampler(p.pid)
        try:
            p.wait(600)
        finally:
            sampler.stop()
        if p.returncode not in (0, 1):  # 1: a threshold (none here) or behind schedule is expected
            err.seek(0)
            raise RuntimeError(f"loadgen run --workers {workers} failed ({p.returncode}):\n{err.read()[-3000:]}")
    (d,) = list(out.iterdir())
    walls = []
    with open(d / "requests.jsonl") as f:
        for line in f:
            walls.append(json.loads(line)["wall_start"])
    span = max(walls) - min(walls)
    used = sampler.between(min(walls), max(walls))
    roles = sampler.roles()
    n = len(walls)

    def per_request(role: str, k: int, scale: float) -> float:
        return scale * sum(v[k] for pid, v in used.items() if roles.get(pid) == role) / n
    ours = [v for pid, v in used.items() if pid != 0]
    return {"workers": workers, "attempts": n, "span_s": span, "rps": n / span if span else 0.0,
            "cpu_us": {**{r: per_request(r, 0, 1e6) for r in ROLES}, "total": 1e6 * sum(v[0] for v in ours) / n},
            "switches": {r: (per_request(r, 1, 1.0), per_request(r, 2, 1.0)) for r in ROLES},
            "cores_busy": sum(v[0] for v in ours) / span if span else 0.0,
            "machine": tuple(x / span if span else 0.0 for x in used.get(0, (0.0, 0.0, 0.0)))}


def _show(label: str, r: dict) -> None:
    c, sw = r["cpu_us"], r["switches"]
    print(f"  {label}: {r['attempts']} attempts in {r['span_s']:.2f} s = {r['rps']:.0f} req/s; load {C.load_average()}\n"
          f"      CPU us per request: parent {c['parent']:.0f}, emulator {c['emulator']:.0f}, workers {c['worker']:.0f}, "
          f"total {c['total']:.0f}\n      cores busy: {r['cores_busy']:.2f} with it, {r['machine'][0]:.2f} in all "
          f"(interrupts and softirq {r['machine'][1]:.2f}, stolen {r['machine'][2]:.2f})\n"
          "      context switches per request (voluntary/involuntary): "
          + ", ".join(f"{role} {sw[role][0]:.2f}/{sw[role][1]:.2f}" for role in ROLES), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="the split case (default 2)")
    ap.add_argument("--requests", type=int, default=8000, help="requests per case (--max-requests)")
    ap.add_argument("--rate", type=float, default=8000.0, help="intended requests/s: far above the ceiling")
    ap.add_argument("--concurrency", type=int, default=64, help="max_in_flight per worker")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--mode", choices=["builtin", "endpoint"], default="builtin")
    ap.add_argument("--cluster", choices=["ray"], help="compare N local workers with N Ray actors instead")
    a = ap.parse_args()
    ray = None
    if a.cluster:
        import ray  # deferred: only the --cluster case needs Ray (an optional extra)

        ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address if ray is not None else None
    # (label, workers, Ray address): the baseline first, then the case it is compared with
    cases = ([(f"--workers {a.workers}", a.workers, None), (f"--workers {a.workers} --cluster ray", a.workers, address)]
             if a.cluster else [("--workers 1", 1, None), (f"--workers {a.workers}", a.workers, None)])
    load0 = os.getloadavg()
    rounds: dict[str, list[dict]] = {label: [] for label, _, _ in cases}
    try:
        with tempfile.TemporaryDirectory(prefix="loadgen-bench-workers-") as tmp:
            work = Path(tmp)
            for _ in range(a.repeat):
                for label, n, ray_address in cases:
                    if a.mode == "endpoint":
                        with C.emulator(core=0) as url:
                            r = ceiling(n, a, work, url, ray_address)
                    else:
                        r = ceiling(n, a, work, None, ray_address)
                    rounds[label].append(r)
                    _show(label, r)
    finally:
        if ray is not None:
            ray.shutdown()
    load1 = os.getloadavg()
    best = {k: max(r["rps"] for r in rs) for k, rs in rounds.items()}
    spread = {k: (min(r["rps"] for r in rs), max(r["rps"] for r in rs)) for k, rs in rounds.items()}
    (base, _, _), (case, _, _) = cases
    lines = [f"mode {a.mode}, {C.cores()} cores, load average {load0[0]:.2f} before, {load1[0]:.2f} after"]
    lines += [f"{k}: best {best[k]:.0f} req/s (spread {spread[k][0]:.0f}..{spread[k][1]:.0f})" for k in (base, case)]
    lines.append(f"ratio {case} / {base}: {best[case] / best[base]:.2f}x (best of each); last round alone "
                 f"{rounds[case][-1]['rps'] / rounds[base][-1]['rps']:.2f}x")
    lines.append("CPU per request, all processes counted, lowest of the rounds: " + ", ".join(
        f"{k} {min(r['cpu_us']['total'] for r in rounds[k]):.0f} us" for k in (base, case)))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
