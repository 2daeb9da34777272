"""A run split over worker processes, put back together: parts in, one results directory out.

Each worker writes a *part* directory, `<run>/parts/worker-<i>/`:

    requests.jsonl   its attempts, one line each, appended as they complete
    metrics.state    its Metrics at its end (`metrics_state`: counters as they are,
                     histograms in HdrHistogram's standard compressed encoding)

The parent adds the parts' Metrics (`Metrics.merge`: histograms `add()` exactly, since
every worker builds them with the same settings; counters summed) and concatenates the
parts' requests.jsonl into the run's own, part after part (each in its completion
order), then removes `parts/`. A worker killed before writing metrics.state still
counts: its Metrics are rebuilt from its requests.jsonl by the fold a finished run uses
(`rebuild.rebuild_summary`, the same figures). If the parent itself dies before the merge,
`parts/` stays and `directory.load_attempts` reads it (see there), so `report` and the
rebuild of a killed run see every attempt either way.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

from hdrh.histogram import HdrHistogram

from loadgen.results.directory import PARTS_DIR, REQUESTS_FILE
from loadgen.results.histograms import LATENCY_METRICS
from loadgen.results.metrics import ArmInfo, Metrics

METRICS_STATE_FILE = "metrics.state"
_STATE_VERSION = 1


def part_dir(results_path: str | Path, index: int) -> Path:
    """Where worker `index` writes its part."""
    return Path(results_path) / PARTS_DIR / f"worker-{index}"


def metrics_state(m: Metrics) -> bytes:
    """`m` as bytes another process of the same loadgen version can load (`load_metrics`).

    HdrHistogram objects do not pickle (ctypes arrays); their standard encoding does,
    and decodes to the same settings, so `add()` after the round trip is exact.
    """
    arms = []
    for a in m._arms.values():  # noqa: SLF001 - the state of Metrics, kept beside it in this package
        if a.batch is not None:
            raise ValueError("batch arms run in one process: their figures are not split into parts")
        fields = {k: getattr(a, k) for k in a.__slots__ if k not in LATENCY_METRICS and k not in ("info", "batch")}
        hists = {k: a.hist(k).encode() for k in LATENCY_METRICS}
        arms.append((a.info.__dict__, fields, hists))
    return pickle.dumps((_STATE_VERSION, arms), protocol=pickle.HIGHEST_PROTOCOL)


def load_metrics(data: bytes) -> Metrics:
    """The Metrics `metrics_state` wrote."""
    version, arms = pickle.loads(data)
    if version != _STATE_VERSION:
        raise ValueError(f"metrics state version {version}, expected {_STATE_VERSION}")
    m = Metrics([ArmInfo(**info) for info, _, _ in arms])
    for info, fields, hists in arms:
        a = m._arms[info["name"]]  # noqa: SLF001
        for k, v in fields.items():
            setattr(a, k, v)
        for k, enc in hists.items():
            a.hist(k).add(HdrHistogram.decode(enc))
    return m


def write_part_metrics(part: str | Path, m: Metrics) -> None:
    """metrics.state in `part`, atomically (a reader sees the whole state or none)."""
    p = Path(part) / METRICS_STATE_FILE
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_bytes(metrics_state(m))
    os.replace(tmp, p)


def read_part_metrics(part: str | Path) -> Metrics | None:
    """A part's Metrics, or None when the worker died before writing them."""
    try:
        return load_metrics((Path(part) / METRICS_STATE_FILE).read_bytes())
    except FileNotFoundError:
        return None


def merge_metrics(into: Metrics, parts: Iterable[Metrics]) -> Metrics:
    for m in parts:
        into.merge(m)
    return into


def merge_requests(results_path: str | Path, parts: Sequence[str | Path]) -> int:
    """Concatenate the parts' requests.jsonl into the run's (written empty by the parent),
    through a temporary file renamed over it, so a reader sees all the parts' lines or the
    parts themselves (load_attempts). A torn last line (a killed worker) is dropped.
    Returns the lines written."""
    target = Path(results_path) / REQUESTS_FILE
    tmp = target.with_name(f".{REQUESTS_FILE}.tmp-{os.getpid()}")
    n = 0
    with open(tmp, "w", encoding="utf-8") as out:
        with open(target, encoding="utf-8") as own:  # lines the parent wrote itself (none today)
            for line in own:
                if line.endswith("\n"):
                    out.write(line)
                    n += 1
        for part in parts:
            p = Path(part) / REQUESTS_FILE
            if not p.exists():
                continue
            with open(p, encoding="utf-8") as f:
                for line in f:
                    if line.endswith("\n"):
                        out.write(line)
                        n += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return n


def remove_parts(results_path: str | Path) -> None:
    shutil.rmtree(Path(results_path) / PARTS_DIR, ignore_errors=True)


def part_metrics_or_rebuilt(part: str | Path, rebuild: Callable[[Path], Metrics]) -> tuple[Metrics, bool]:
    """(the part's Metrics, whether they had to be rebuilt from its requests.jsonl)."""
    m = read_part_metrics(part)
    if m is not None:
        return m, False
    return rebuild(Path(part)), True

