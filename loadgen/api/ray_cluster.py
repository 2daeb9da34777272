"""loadgen's jobs as Ray tasks: `--cluster ray` (this machine) or `--cluster ray://HOST:PORT`.

Ray is an optional extra (`pip install 'loadgen[ray]'`); it is imported only here and
only when asked for. Connecting:
  `ray`              ray.init() with no address: a Ray already running on this machine
                     (`ray start --head`, or RAY_ADDRESS) is joined, else a local one is
                     started for this command and stopped at its end.
  `ray://HOST:PORT`  Ray Client to an existing cluster (its head's client port, 10001 by
                     default). The loadgen package of this machine is shipped with the
                     job (runtime_env py_modules), so the cluster runs exactly this code;
                     its dependencies (`pip install loadgen` or the same requirements)
                     must be on the cluster's nodes.

A task may run on another machine, so a job that writes a results directory writes it in
a temporary folder there and returns its files (api/fanout.py Fanout.ships_files); the parent writes
them under its own results folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Hashable

import loadgen

RAY_HINT = "pip install 'loadgen[ray]'"


class RayMissing(ValueError):
    """`--cluster ray` without Ray installed (bad input: the fix is an install, exit 2)."""


class ClusterError(RuntimeError):
    """The cluster could not be reached (the target failed: exit 3)."""

def import_ray() -> Any:
    try:
        import ray  # deferred: Ray is an optional extra and takes ~0.6 s to import
    except ImportError:
        raise RayMissing(f"--cluster: Ray is not installed; install it with: {RAY_HINT}") from None
    return ray


def connect(address: str) -> tuple[Any, bool, str]:
    """(ray module, whether this call started Ray, description). ClusterError when the
    cluster cannot be reached; RayMissing without Ray."""
    ray = import_ray()
    if ray.is_initialized():  # a notebook or a test session already holds a Ray: use it
        return ray, False, _describe(ray, "Ray (already connected)")
    quiet = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address == "ray":
            ray.init(**quiet)
            what = "Ray on this machine"
        else:
            # the cluster runs this machine's loadgen code (Ray uploads the package folder); its
            # path, not the module: Ray Client pickles the runtime_env, and a module does not pickle
            ray.init(address=address, runtime_env={"py_modules": [str(Path(loadgen.__file__).parent)]},
                     logging_level=logging.WARNING, log_to_driver=False)
            what = f"Ray at {address}"
    except Exception as e:  # noqa: BLE001 - Ray raises many kinds for "no cluster there"
        raise ClusterError(f"--cluster {address}: cannot connect to Ray: {type(e).__name__}: {e}") from e
    return ray, True, _describe(ray, what)


def _describe(ray: Any, what: str) -> str:
    return f"{what}, {cluster_cpus(ray)} CPU(s)"


def cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class RayFanout:
    """Jobs as Ray tasks (one CPU each), at most `width` at once (the Fanout protocol of api/fanout.py)."""

    ships_files = True

    def __init__(self, ray: Any, started: bool, width: int, where: str) -> None:
        self._ray, self._started = ray, started
        self.width, self.where = width, where
        self._refs: dict[Any, Hashable] = {}
        self._remote: dict[Callable[..., Any], Any] = {}

    @classmethod
    def connect(cls, address: str, workers: int | None) -> "RayFanout":
        ray, started, where = connect(address)
        return cls(ray, started, workers or cluster_cpus(ray), where)

    def submit(self, key: Hashable, fn: Callable[..., Any], *args: Any) -> None:
        task = self._remote.get(fn)
        if task is None:
            task = self._remote[fn] = self._ray.remote(num_cpus=1, max_retries=0)(fn)
        self._refs[task.remote(*args)] = key

    def done(self, timeout: float) -> list[tuple[Hashable, Any, BaseException | None]]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                out.append((key, self._ray.get(ref), None))
            except Exception as e:  # noqa: BLE001 - the task's own error, re-raised by the caller
                out.append((key, None, e))
        return out

    def in_flight(self) -> int:
        return len(self._refs)

    def abort(self) -> None:
        for ref in list(self._refs):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone: nothing left to stop
                pass
        self._refs.clear()

    def close(self) -> None:
        self.abort()
        if self._started:
            self._ray.shutdown()
