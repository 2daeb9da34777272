"""Independent jobs fanned out over local processes or a Ray cluster, results back here.

What `simulate --workers N` / `--cluster ray` runs in parallel: sweep points and
find-max-rate trials. A job is a top-level function of this package and picklable
arguments (a Scenario, a rate, a path); it returns a picklable value. A job never
shares state with another job, so running jobs side by side gives each the answer it
gives alone: one simulated scenario always stays in one job (splitting it would split
its emulator model's cache and quotas).

Two executors share one small protocol (`Fanout`):
  LocalPool    a process pool on this machine (`--workers N`); jobs write their
               results directories straight into the parent's folder.
  RayFanout    Ray tasks (`--cluster ray[://ADDRESS]`, loadgen/api/ray_cluster.py);
               a task may run on another machine, so files come back as bytes
               (`ships_files`) and the parent writes them.

The caller keeps at most `width` jobs in flight and submits the next only when one
finishes: Ctrl-C then means "submit nothing more, let the jobs in hand finish"
without cancelling anything queued, and a second Ctrl-C `abort()`s the jobs in hand.
"""

from __future__ import annotations

import concurrent.futures as cf
import html
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Protocol

from loadgen.api.ray_cluster import RayFanout



class Fanout(Protocol):
    """Where jobs run. `submit` starts one; `done` waits (up to `timeout` s) for finished ones."""

    width: int          # how many jobs to keep in flight at once
    ships_files: bool   # jobs may not see this machine's files: they return them as bytes
    where: str          # for the header: "2 local processes", "Ray (local, 2 CPUs)"

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None: ...

    def done(self, timeout: float) -> list[tuple[Hashable, Any, BaseException | None]]: ...

    def in_flight(self) -> int: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Placement:
    """Where `simulate` runs its jobs: `workers` at once (None: as many as the cluster has
    CPUs), here (`cluster` None) or on Ray (`cluster` "ray" or "ray://HOST:PORT")."""

    workers: int | None = 1
    cluster: str | None = None

    @property
    def parallel(self) -> bool:
        return self.cluster is not None or (self.workers or 1) > 1


SERIAL = Placement()


def cores() -> int:
    """The cores this process may run on (`--workers auto`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_workers(text: str) -> int:
    """`--workers` value: a whole number >= 1, or `auto` (the cores). ValueError otherwise."""
    if text.strip().lower() == "auto":
        return cores()
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number >= 1 or 'auto', got {text!r}") from None
    if n < 1:
        raise ValueError(f"expected a whole number >= 1 or 'auto', got {text!r}")
    return n


def check_cluster(text: str) -> str:
    """`--cluster` value: `ray` (this machine's Ray, or a new local one) or `ray://HOST:PORT`."""
    if text == "ray" or (text.startswith("ray://") and len(text) > len("ray://")):
        return text
    raise ValueError(f"expected 'ray' or 'ray://HOST:PORT', got {text!r}")


def open_fanout(placement: Placement) -> Fanout:
    """The executor for `placement` (RayMissing: Ray asked for but not installed;
    ClusterError: the cluster could not be reached)."""
    if placement.cluster is not None:
        return RayFanout.connect(placement.cluster, placement.workers)
    return LocalPool(placement.workers or cores())


class LocalPool:
    """A pool of `width` processes on this machine. Workers ignore SIGINT: Ctrl-C reaches the
    whole process group, and the parent decides what it means (module docstring)."""

    ships_files = False

    def __init__(self, width: int) -> None:
        self.width = width
        self.where = f"{width} local process{'es' if width != 1 else ''}"
        # fork where the platform has it: a worker starts in milliseconds with loadgen
        # already imported; elsewhere (macOS, Windows) spawn, which imports it afresh
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods and sys.platform == "linux" else "spawn")
        self._pool = cf.ProcessPoolExecutor(max_workers=width, mp_context=ctx, initializer=_quiet_worker)
        self._futures: dict[cf.Future, Hashable] = {}

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        self._futures[self._pool.submit(fn, *args)] = key

    def done(self, timeout: float) -> list[tuple[Hashable, Any, BaseException | None]]:
        if not self._futures:
            return []
        finished, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for f in finished:
            key = self._futures.pop(f)
            e = f.exception()
            out.append((key, None if e else f.result(), e))
        return out

    def in_flight(self) -> int:
        return len(self._futures)

    def abort(self) -> None:
        """Stop the jobs in hand now (a second Ctrl-C): their processes are killed."""
        self._futures.clear()
        terminate = getattr(self._pool, "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()
            return
        # before 3.14 the pool has no public way to stop a running job; its process table is
        # the only handle (CPython's ProcessPoolExecutor._processes: pid -> Process)
        for proc in list((getattr(self._pool, "_processes", None) or {}).values()):
            proc.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_all(fan: Fanout, jobs: list[tuple[Hashable, Callable[..., Any], tuple]], on_done: Callable[[Hashable, Any], None],
            stop: Any, started: list[Hashable] | None = None) -> list[Hashable]:
    """Run `jobs` (key, fn, args) with at most `fan.width` in flight, in order; `on_done(key,
    result)` for each as it finishes. `stop.set` (the StopFlag): submit nothing more.
    `started` (when given) receives each key as its job is submitted.

    Returns the keys never started. A job's exception aborts the others and is raised; a
    KeyboardInterrupt (second Ctrl-C) aborts the jobs in hand and is raised.
    """
    pending = list(jobs)
    try:
        while pending or fan.in_flight():
            while pending and not stop.set and fan.in_flight() < fan.width:
                key, fn, args = pending.pop(0)
                fan.submit(key, fn, *args)
                if started is not None:
                    started.append(key)
            if not fan.in_flight():
                break
            for key, result, error in fan.done(timeout=0.2):
                if error is not None:
                    raise error
                on_done(key, result)
    except BaseException:
        fan.abort()
        raise
    return [k for k, _, _ in pending]


def write_files(path: Path, files: dict[str, bytes], *, was: str | None = None) -> None:
    """Write a directory a job shipped back (relative name -> bytes) at `path`.

    `was`: the folder the job wrote them in on its machine; report.html names its own
    folder at the top, so that one line is pointed at `path`.
    """
    path.mkdir(parents=True, exist_ok=False)
    for rel, data in files.items():
        out = path / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise RuntimeError(f"a worker returned a file outside its results directory: {rel}")
        out.parent.mkdir(parents=True, exist_ok=True)
        if was is not None and rel == "report.html":
            data = data.replace(html.escape(was).encode(), html.escape(str(path)).encode())
        out.write_bytes(data)


def read_files(path: Path) -> dict[str, bytes]:
    """Every file under `path` by its relative name (what a job on another machine ships back)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
