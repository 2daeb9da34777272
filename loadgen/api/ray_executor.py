"""`loadgen run --cluster ray[://ADDRESS]`: the segments of a split run as Ray actors.

The Executor of api/executor.py on Ray (connecting as api/ray_cluster.py does; Ray is
imported only there, and only when asked for). The parent (api/workers.py) is the one
a local split run has; what changes is where its pieces live:

- the coordinator is a Ray actor (api/ray_coordinator.py: the budget with USD leased in
  chunks, the start instant, control, progress rows), cached at both ends so neither a
  worker's event loop nor the parent's progress line waits on Ray;
- each segment is a Ray actor (`SegmentHost`, one CPU, named by its part directory in
  the namespace "loadgen") running `segment_worker.run_segment` into a temporary folder
  on its node. It may be another machine, so the parent pulls its requests.jsonl as it
  grows (whole lines, every CHUNK_EVERY_S) into `<run>/parts/worker-<i>/`, and at the
  end the rest and metrics.state: results/merge.py merges the parts as it merges local
  ones, and a segment whose actor dies keeps the attempts pulled before it died. The
  parent's Ray calls run on one pump thread (every PUMP_S): the segment actors' creation
  (a named actor is a round trip to Ray's GCS), their pulls and their `ray.kill`;
  `launch()` and `kill()` only hand it the work and `Launched.poll()` reads what it found,
  so the parent's event loop (its progress line, its Ctrl-C) never waits on them. Off
  the pump: the first wait for the coordinator (`coordinator_ready`, which api/workers.py
  runs on a thread of its own), the coordinator actor's creation and the writes
  RayCoordinator sends (`.remote`, which only sends), and close() (after the run);
- the built-in emulator: with `--cluster ray` (this machine's Ray) it runs in a process
  on this machine as for local workers, and the segments are pinned to this machine's
  node, where 127.0.0.1 reaches it; with `ray://HOST:PORT` the nodes cannot reach this
  machine's 127.0.0.1, so such a run is refused (`cluster_problem`): it needs
  --endpoint-url (an endpoint every node reaches) or --target aws.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from loadgen.api.executor import PartOutcome
from loadgen.api.ray_cluster import cluster_cpus, connect
from loadgen.api.ray_coordinator import CoordinatorState, RayCoordinator, WorkerCoordinator, usd_chunk, usd_reserve
from loadgen.api.segment_worker import PartResult, SegmentSpec, run_segment
from loadgen.api.workers import WORKER_DIED
from loadgen.engine.transport import TargetError
from loadgen.results.directory import REQUESTS_FILE
from loadgen.results.merge import METRICS_STATE_FILE

_log = logging.getLogger(__name__)

PUMP_S = 0.05            # real seconds between the parent's looks at the actors
CHUNK_EVERY_S = 0.5      # real seconds between pulls of a segment's new attempts
FINAL_PULL_S = 60.0      # real seconds the parent waits for a finished segment's last lines
ACTOR_NAMESPACE = "loadgen"
COORDINATOR_WAIT_S = 120.0  # real seconds the parent waits for the coordinator actor to answer


def cluster_problem(address: str, builtin_emulator: bool) -> str | None:
    """Why a run cannot go to the Ray at `address`, or None (checked before connecting)."""
    if builtin_emulator and address != "ray":
        return (f"--cluster {address}: the built-in emulator runs on this machine, and the cluster's nodes "
                "cannot reach its 127.0.0.1; pass --endpoint-url URL (an endpoint every node can reach, e.g. "
                "`loadgen emulator --host 0.0.0.0` on one of them) or --target aws, or use --cluster ray "
                "(the Ray of this machine)")
    return None


# -- one segment's actor ----------------------------------------------------------------


class SegmentHost:
    """One segment on a Ray node (Ray wraps this class; one CPU). `run` sends the segment
    into a temporary part folder; `pull` (on a second thread of the actor) hands the parent
    the whole lines requests.jsonl gained since `offset`."""

    def __init__(self) -> None:
        try:  # Ctrl-C is the parent's to handle: it tells the segments through the coordinator
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            pass  # not the main thread of the worker: Ray's own handling applies
        self.part = Path(tempfile.mkdtemp(prefix="loadgen-part-"))

    def run(self, spec: SegmentSpec) -> PartResult:
        try:
            return run_segment(dataclasses.replace(spec, part_dir=str(self.part / "part")))
        finally:
            spec.coordinator.close()

    def pull(self, offset: int, final: bool = False) -> tuple[bytes, bytes | None]:
        """(whole lines of requests.jsonl from byte `offset`, metrics.state if `final`)."""
        data = b""
        try:
            with open(self.part / "part" / REQUESTS_FILE, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            pass
        data = data[:data.rfind(b"\n") + 1]  # a line being written is pulled next time
        state = None
        if final:
            try:
                state = (self.part / "part" / METRICS_STATE_FILE).read_bytes()
            except FileNotFoundError:
                pass
            shutil.rmtree(self.part, ignore_errors=True)
        return data, state


class _Segment:
    """The parent's handle on one segment actor (the `Launched` of api/executor.py). Its
    actor is created, followed and killed by the executor's pump thread (`step`): `poll`
    only reads, `kill` only marks, so neither blocks the parent's event loop."""

    def __init__(self, ray: Any, actor: Any, spec: SegmentSpec, parent_part: Path,
                 make: Callable[[], Any] | None = None) -> None:
        """`actor`: the segment's actor, or None and `make` creates it (the pump's first step)."""
        self.index = spec.index
        self._ray, self._make, self._spec = ray, make, spec
        self._actor: Any = None
        self._run: Any = None
        self._part = parent_part
        self._part.mkdir(parents=True, exist_ok=True)
        self._out = open(self._part / REQUESTS_FILE, "ab")
        self._io = threading.Lock()   # the pump appends, `kill` (the parent's loop too) closes
        self._offset = 0
        self._pull: Any = None
        self._pulled_at = time.monotonic()
        self._outcome: PartOutcome | None = None
        self.killed = False
        self._kill_sent = False       # pump thread only (and close() after the pump)
        if actor is not None:
            self._started(actor)

    def _started(self, actor: Any) -> None:
        self._actor = actor
        self._run = actor.run.remote(self._spec)
        self._pulled_at = time.monotonic()

    def poll(self) -> PartOutcome | None:
        return self._outcome

    def kill(self) -> None:
        """End it: what arrives after this is not the part's; the pump sends `ray.kill`."""
        self.killed = True
        with self._io:
            self._out.close()

    def send_kill(self) -> None:
        """`ray.kill` of a killed segment's actor, once (the pump's thread, or close())."""
        if self._actor is not None and not self._kill_sent:
            self._kill_sent = True
            try:
                self._ray.kill(self._actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _append(self, data: bytes) -> None:
        with self._io:
            if data and not self._out.closed:  # killed: what came after the kill is not the part's
                self._out.write(data)
                self._out.flush()
                self._offset += len(data)

    def step(self) -> None:
        """One look (pump thread): create the actor, else send a kill, take a pulled chunk,
        notice the end, pull again."""
        if self._outcome is not None:
            return
        if self._actor is None:
            if self.killed:  # killed before its actor existed: it sent nothing
                self._close(PartOutcome(None, "killed"))
                return
            assert self._make is not None
            self._started(self._make())   # a named actor: a round trip to Ray's GCS
            return
        if self.killed:
            self.send_kill()
        ray = self._ray
        if self._pull is not None and ray.wait([self._pull], timeout=0)[0]:
            try:
                self._append(ray.get(self._pull)[0])
            except Exception:  # noqa: BLE001 - the actor died: its end says how
                pass
            self._pull = None
        if ray.wait([self._run], timeout=0)[0]:
            self._end()
        elif self._pull is None and time.monotonic() - self._pulled_at >= CHUNK_EVERY_S:
            self._pulled_at = time.monotonic()
            self._pull = self._actor.pull.remote(self._offset)

    def _end(self) -> None:
        ray = self._ray
        try:
            result: PartResult = ray.get(self._run)
        except Exception as e:  # noqa: BLE001 - the actor died or was killed: what was pulled stays
            self._close(PartOutcome(None, "killed" if self.killed else _died(e)))
            return
        if self._pull is not None:
            try:
                self._append(ray.get(self._pull, timeout=FINAL_PULL_S)[0])
            except Exception:  # noqa: BLE001 - the offset did not move: the final pull takes those lines too
                pass
            self._pull = None
        try:
            data, state = ray.get(self._actor.pull.remote(self._offset, True), timeout=FINAL_PULL_S)
        except Exception as e:  # noqa: BLE001 - its last lines are lost: its Metrics would count them
            # PartResult.metrics_state counts every attempt; the merged requests.jsonl lacks
            # the last ones. Dropped, the parent rebuilds this part's Metrics from the lines
            # it did pull (as for a dead actor), and the run says the part was lost.
            self._close(PartOutcome(dataclasses.replace(result, part_dir=str(self._part), metrics_state=None,
                                                        stop_reason=WORKER_DIED,
                                                        error=result.error or f"last lines lost: {_died(e)}")))
            return
        self._append(data)
        if state is not None:
            (self._part / METRICS_STATE_FILE).write_bytes(state)
        self._close(PartOutcome(dataclasses.replace(result, part_dir=str(self._part))))

    def _close(self, outcome: PartOutcome) -> None:
        self.kill()  # its CPU goes back to the cluster
        self.send_kill()
        self._outcome = outcome


def _node_cpus(ray: Any, node_id: str) -> int:
    for node in ray.nodes():
        if node.get("NodeID") == node_id:
            return max(1, int(node.get("Resources", {}).get("CPU", 1)))
    return cluster_cpus(ray)


def _died(e: BaseException) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"Ray: {type(e).__name__}" + (f": {first[:200]}" if first else "")


# -- the parent's side ------------------------------------------------------------------


class RayExecutor:
    """Segments as Ray actors (module doc). `RayExecutor.connect("ray" | "ray://HOST:PORT")`;
    `close()` ends what it started (the actors; Ray itself if it started it)."""

    def __init__(self, ray: Any, started: bool, where: str, *, local: bool, here: bool = True) -> None:
        self._ray, self._started = ray, started
        self.where = where
        self.local = local
        # the emulator process (built-in target) runs here; only a local Ray's nodes reach it
        self.context = multiprocessing.get_context("spawn") if local else None
        # with the built-in emulator the segments stay on this machine's node (its 127.0.0.1)
        self._node = ray.get_runtime_context().get_node_id() if local and here else None
        # segments that can run at once: each holds one CPU from its start to its end
        self.cpus = _node_cpus(ray, self._node) if self._node is not None else cluster_cpus(ray)
        self._segments: list[_Segment] = []
        self._coordinators: list[RayCoordinator] = []
        self._remote_segment: Any = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pump: threading.Thread | None = None
        self._told: set[int] = set()   # coordinators whose refresh failed and said so

    @classmethod
    def connect(cls, address: str, *, here: bool = True) -> "RayExecutor":
        """RayMissing without Ray, ClusterError when it cannot be reached (api/ray_cluster.py).
        `here`: with this machine's Ray (`ray`), keep the segments on this machine's node (the
        built-in emulator listens on its 127.0.0.1); False lets Ray place them on any node."""
        ray, started, where = connect(address)
        return cls(ray, started, where, local=address == "ray", here=here)

    def coordinator(self, workers: int, arms: int, max_requests: int | None,
                    max_cost_usd: float | None) -> RayCoordinator:
        actor_cls = self._ray.remote(num_cpus=0, max_restarts=0)(CoordinatorState)
        actor = actor_cls.remote(workers, arms, max_requests, max_cost_usd)
        co = RayCoordinator(self._ray, actor, workers, self.context)
        self._usd_chunk = usd_chunk(max_cost_usd, workers)
        self._usd_reserve = usd_reserve(max_cost_usd, workers)
        return co

    def coordinator_ready(self, co: RayCoordinator) -> None:
        """Wait (up to COORDINATOR_WAIT_S) until the coordinator actor answers, then let the
        pump follow it: blocking, so api/workers.py calls it on a thread, not its event loop
        (a Ctrl-C meanwhile stops the run before any segment starts; an abort gives the
        wait up, and this thread may then end after close()). TargetError when it does not
        answer: the run ends "target-failed" with nothing sent (exit 3)."""
        try:  # the actor is up (and the cluster answers) before any segment starts
            co.refresh(timeout=COORDINATOR_WAIT_S)
        except Exception as e:  # noqa: BLE001 - a timeout, or the actor could not be placed or died
            raise TargetError(f"{self.where}: the run's coordinator actor did not answer within "
                              f"{COORDINATOR_WAIT_S:g} s ({_died(e)})") from e
        if self._closed.is_set():
            return
        with self._lock:
            self._coordinators.append(co)
        self._start_pump()

    def launch(self, spec: SegmentSpec) -> _Segment:
        """The segment's handle at once; the pump creates its actor (module doc)."""
        co: RayCoordinator = spec.coordinator
        if self._remote_segment is None:
            options: dict[str, Any] = {"num_cpus": 1, "max_restarts": 0, "max_concurrency": 2}
            if self._node is not None:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # deferred: Ray is an optional extra

                # the built-in emulator and the parent's 127.0.0.1 are on this node
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self._node, soft=False)
            self._remote_segment = self._ray.remote(**options)(SegmentHost)
        remote = self._remote_segment

        def make() -> Any:
            # named by its part (namespace "loadgen"): `ray.get_actor` finds it, the dashboard shows whose it is
            return remote.options(name=spec.part_dir, namespace=ACTOR_NAMESPACE).remote()

        worker_spec = dataclasses.replace(spec, coordinator=WorkerCoordinator(co.actor, self._usd_reserve), usd_chunk=self._usd_chunk)
        seg = _Segment(self._ray, None, worker_spec, Path(spec.part_dir), make)
        with self._lock:
            self._segments.append(seg)
        self._start_pump()
        return seg

    def _start_pump(self) -> None:
        with self._lock:  # coordinator_ready's thread or the parent's loop (launch)
            if self._pump is None:
                self._pump = threading.Thread(target=self._pump_forever, name="loadgen-ray-pump", daemon=True)
                self._pump.start()

    def _pump_forever(self) -> None:
        while not self._closed.wait(PUMP_S):
            with self._lock:
                segments, coordinators = list(self._segments), list(self._coordinators)
            for co in coordinators:
                try:
                    co.refresh()
                except Exception as e:  # noqa: BLE001 - the next look may succeed; the parent keeps the last state
                    if id(co) not in self._told:
                        self._told.add(id(co))
                        _log.warning("the run's coordinator actor did not answer (%s); progress may stand "
                                     "still", _died(e))
            for seg in segments:
                if seg.poll() is None:
                    try:
                        seg.step()
                    except Exception as e:  # noqa: BLE001 - a pump that stops would hang the parent
                        seg._close(PartOutcome(None, _died(e)))  # noqa: SLF001 - this module's own handle

    def close(self) -> None:
        self._closed.set()
        if self._pump is not None:  # it may be in a segment's last pulls (FINAL_PULL_S each)
            self._pump.join(2 * FINAL_PULL_S + 5.0)
        with self._lock:
            segments, coordinators = list(self._segments), list(self._coordinators)
            self._segments.clear()
            self._coordinators.clear()
        for seg in segments:  # the pump has stopped: its kills are sent here
            if seg.poll() is None:
                seg.kill()
            seg.send_kill()
        for co in coordinators:
            try:
                self._ray.kill(co.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self._started:
            self._ray.shutdown()
