"""`loadgen run --cluster ray`: the execution segments of `run --workers N` as Ray actors on
a local 2-CPU Ray; they send what one process sends, every attempt accounted, one budget,
their parts pulled back and merged as local workers' are."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadgen.api.executor import PartOutcome
from loadgen.api.ray_coordinator import CoordinatorState, RayCoordinator, WorkerCoordinator, usd_chunk, usd_reserve
from loadgen.api.ray_executor import COORDINATOR_WAIT_S, RayExecutor, _Segment
from loadgen.commands.cli import main
from loadgen.engine.budget import SegmentBudget
from loadgen.engine.schedule import Segment
from result_files import only_dir, read_results
from test_batch_arms import scenario as batch_scenario
from test_run_workers import OPEN, accounted, first_attempts, run_cli, write

ray = pytest.importorskip("ray", reason="Ray is in the test extra: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs (as tests/test_ray_cluster.py starts), or the one this test
    process already holds; loadgen joins it (ray.is_initialized)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def runs(local_ray, tmp_path_factory):
    """One scenario by one local process, and on Ray by two actors: whole, under
    --max-requests, under --max-cost-usd (the runs are shared: each costs seconds)."""
    d = tmp_path_factory.mktemp("ray-run")
    sc = write(d, OPEN)
    return {"dir": d, "one": run_cli(d, sc, "one"),
            "ray": run_cli(d, sc, "ray", "--cluster", "ray", "--workers", "2", "--output", "jsonl"),
            "capped": run_cli(d, sc, "capped", "--cluster", "ray", "--workers", "2", "--max-requests", "25"),
            "cost": run_cli(d, sc, "cost", "--cluster", "ray", "--workers", "2", "--max-cost-usd", "0.05")}


@pytest.mark.slow
def test_two_ray_actors_send_exactly_the_one_process_request_set(runs):
    code1, s1, l1 = runs["one"]
    code2, s2, l2 = runs["ray"]
    assert code1 == code2 == 0
    accounted(s1, l1)
    accounted(s2, l2)
    assert len(first_attempts(l1)) > 200
    assert first_attempts(l2) == first_attempts(l1)                   # same count, same identities
    assert s2["workers"] == 2 and s2["clock"] == "scaled" and s2["stopped"] == s1["stopped"] == "completed"
    assert s2["cluster"] == "Ray (already connected), 2 CPU(s)" and "cluster" not in s1
    d = only_dir(runs["dir"] / "ray")
    assert json.loads((d / "run.json").read_text())["cluster"] == s2["cluster"]
    assert not (d / "parts").exists()                                 # pulled back, merged, removed
    assert {line["session"] % 2 for line in l2} == {0, 1}             # both actors sent
    for arm in s2["arms"].values():
        assert arm["cache"]["mismatch"]["total"] == 0 and arm["cache"]["warm"] > 0
    # --output jsonl: the parent read the pulled parts as they grew; every attempt is in a row
    rows = [json.loads(x) for x in (d / "intervals.jsonl").read_text().splitlines()]
    for name, arm in s2["arms"].items():
        assert sum(r["requests"]["sent"] for r in rows if r["arm"] == name) == arm["requests"]["sent"]


@pytest.mark.slow
def test_max_requests_on_ray_is_the_first_arrivals_by_index(runs):
    code, s, lines = runs["capped"]
    assert code == 0
    accounted(s, lines)
    assert first_attempts(lines) == sorted((a, i, 0) for a in ("a", "b") for i in range(25))
    assert s["stopped"] == "max-requests"


@pytest.mark.slow
def test_max_cost_on_ray_is_one_budget_leased_in_chunks(runs):
    code, s, lines = runs["cost"]
    assert code == 0
    accounted(s, lines)
    spent = sum(a["cost_usd"]["total"] for a in s["arms"].values())
    assert s["stopped"] == "max-cost"
    assert spent <= 0.05            # two budgets would let it reach 2 x the cap; chunks never pass it
    assert {line["session"] % 2 for line in lines} == {0, 1}


@pytest.mark.slow
def test_a_segment_actor_that_dies_is_reported_and_its_pulled_attempts_count(local_ray, tmp_path, capsys):
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "6s"').replace("time_scale = 10", "time_scale = 1"))
    out = tmp_path / "res"
    killed: list[float] = []   # Unix time of the kill

    def kill_worker_1() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = list(out.glob("*/parts/worker-1/requests.jsonl"))
            if parts and parts[0].stat().st_size > 1000:   # pulled back at least once
                ray.kill(ray.get_actor(str(parts[0].parent), namespace="loadgen"))
                killed.append(time.time())
                return
            time.sleep(0.05)

    t = threading.Thread(target=kill_worker_1)
    t.start()
    code = main(["run", str(sc), "--out", str(out), "--quiet", "--cluster", "ray", "--workers", "2"])
    t.join()
    assert killed
    err = capsys.readouterr().err
    assert "worker 1 ended without its part (Ray: " in err and "Traceback" not in err
    summary, lines = read_results(only_dir(out))
    assert code == 0
    accounted(summary, lines)
    assert summary["stopped"] == "worker-died"
    odd = [line["wall_start"] for line in lines if line["session"] % 2]
    assert odd                                         # what was pulled from the dead actor counts
    assert max(odd) <= killed[0] + 0.5                 # and it sent none after it died (same machine's clock)


@pytest.mark.slow
def test_ctrl_c_stops_every_actor_and_merges_the_partial_results(local_ray, tmp_path):
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "10m"').replace("time_scale = 10", "time_scale = 1"))
    out = tmp_path / "res"
    # the command joins this test's Ray (RAY_ADDRESS) rather than starting its own
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--cluster", "ray",
                          "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # until both actors' attempts have been pulled back
        parts = list(out.glob("*/parts/worker-*/requests.jsonl"))
        if len(parts) == 2 and all(q.stat().st_size > 1000 for q in parts):
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=90)
    assert p.returncode == 130, stderr
    d = only_dir(out)
    summary, lines = read_results(d)
    assert summary["stopped"] == "interrupted"
    accounted(summary, lines)
    assert sum(a["requests"]["sent"] for a in summary["arms"].values()) > 10
    assert not (d / "parts").exists()
    assert "interrupted: partial results written" in stderr
    assert "as Ray actors on Ray on this machine" in stdout


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["coordinator_ready", "launch"])
def test_ctrl_c_while_the_coordinator_or_the_actors_come_up_still_writes_the_results(local_ray, tmp_path,
                                                                                    monkeypatch, capsys, moment):
    """Ctrl-C before traffic starts (a cluster takes seconds to bring up the coordinator
    actor, then the segments' actors) ends as an interrupted `--workers 2` run does:
    summary.json says interrupted, every attempt is accounted, exit 130. The SIGINT is
    sent from inside the very call (the wait for the coordinator, on its thread; the
    launch of the first segment), so it cannot land before or after that moment."""
    real = getattr(RayExecutor, moment)
    sent: list[str] = []

    def ctrl_c_first(self, *args):
        if not sent:
            sent.append(threading.current_thread().name)
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args)

    monkeypatch.setattr(RayExecutor, moment, ctrl_c_first)
    sc = write(tmp_path, OPEN)
    out = tmp_path / "res"
    code = main(["run", str(sc), "--out", str(out), "--quiet", "--cluster", "ray", "--workers", "2"])
    assert sent                                                    # the SIGINT went out at that moment
    err = capsys.readouterr().err
    assert code == 130, err
    assert "interrupted: partial results written" in err and "Traceback" not in err
    d = only_dir(out)
    summary, lines = read_results(d)                               # was: run.json and an empty requests.jsonl
    assert summary["stopped"] == "interrupted" and summary["workers"] == 2
    accounted(summary, lines)
    assert not (d / "parts").exists()
    if moment == "coordinator_ready":                              # stopped before any segment was launched
        assert lines == [] and sent[0] != "MainThread"


def test_a_coordinator_actor_that_never_answers_fails_the_target_not_the_command(local_ray, tmp_path, monkeypatch,
                                                                                 capsys):
    """The first wait for the coordinator actor (up to COORDINATOR_WAIT_S) running out, as on a
    cluster that cannot place it: exit 3 with a summary of nothing sent, not a traceback."""
    real = RayCoordinator.refresh

    def timed_out(self, timeout=10.0):
        if timeout == COORDINATOR_WAIT_S:
            raise ray.exceptions.GetTimeoutError("Get timed out: some object(s) not ready.")
        return real(self, timeout)

    monkeypatch.setattr(RayCoordinator, "refresh", timed_out)
    sc = write(tmp_path, OPEN)
    code = main(["run", str(sc), "--out", str(tmp_path / "res"), "--quiet", "--cluster", "ray", "--workers", "2"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "target failed: Ray (already connected), 2 CPU(s): the run's coordinator actor did not answer" in err
    assert "GetTimeoutError" in err and "Traceback" not in err
    summary, lines = read_results(only_dir(tmp_path / "res"))
    assert summary["stopped"] == "target-failed" and lines == []


# Agent sessions: turns start when earlier turns end, so --max-requests is one count per
# arm in the coordinator actor, taken once per first attempt (no schedule index decides).
SESSIONS = """
name = "sessions"
seed = 3
duration = "60s"

[target]
time_scale = 20
max_in_flight = 64

[model]
id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 64

[workload]
kind = "agent"
prefix_tokens = 5000
turn_tokens = 100
output_tokens = 20
turns = { min = 2, max = 4 }

[sessions]
arrival = { kind = "poisson", rate = "2/s" }
think_time = { dist = "constant", value = "1s" }

[emulator]
latency = "fast"

[[arms]]
name = "a"

[[arms]]
name = "b"
cache_ttl = "1h"
"""


@pytest.mark.slow
def test_max_requests_of_agent_sessions_on_ray_is_one_exact_count_per_arm(local_ray, tmp_path):
    sc = write(tmp_path, SESSIONS)
    code, s, lines = run_cli(tmp_path, sc, "res", "--cluster", "ray", "--workers", "2", "--max-requests", "30")
    assert code == 0
    accounted(s, lines)
    assert s["stopped"] == "max-requests"
    for arm in ("a", "b"):
        firsts = [line for line in lines if line["arm"] == arm and line["attempt"] == 1]
        assert len(firsts) == 30                                   # never more, and the run had more to send
        assert {line["session"] % 2 for line in firsts} == {0, 1}   # both actors took from the one count


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """End a process the test started, and the processes it started (its own session)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.slow
def test_a_run_through_ray_client_sends_every_arrival_once_from_two_actors(local_ray, tmp_path):
    """`--cluster ray://127.0.0.1:PORT`: Ray Client to this test's Ray (a client server the
    test starts on it, as `ray start --head` would), the loadgen package shipped with the
    job, the scenario's endpoint `loadgen emulator` on 127.0.0.1 (the built-in emulator is
    refused for a remote cluster, whose nodes cannot reach this machine's 127.0.0.1)."""
    node = next(n for n in ray.nodes() if n["Alive"])
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ray.util.client.server", "--address", ray.get_runtime_context().gcs_address,
         "--host", "127.0.0.1", "--port", str(port), "--node-id", node["NodeID"],
         "--runtime-env-agent-address", f"http://{node['NodeManagerAddress']}:{node['RuntimeEnvAgentPort']}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "2s"'))
    emulator = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--port", "0", "--config", str(sc)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        url = emulator.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:"), url
        deadline = time.monotonic() + 60
        while True:  # the client server listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no Ray client server"
                time.sleep(0.2)
        out = tmp_path / "res"
        p = subprocess.run([sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--quiet",
                            "--cluster", f"ray://127.0.0.1:{port}", "--endpoint-url", url, "--workers", "2"],
                           capture_output=True, text=True, timeout=180, env={k: v for k, v in os.environ.items()
                                                                            if k != "RAY_ADDRESS"})
    finally:
        _stop(emulator)
        _stop(server)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    d = only_dir(out)
    summary, lines = read_results(d)
    accounted(summary, lines)
    assert summary["stopped"] == "completed" and summary["clock"] == "real"
    assert summary["cluster"] == f"Ray at ray://127.0.0.1:{port}, 2 CPU(s)"
    assert not (d / "parts").exists()
    for arm in ("a", "b"):  # every arrival of the schedule sent once, by one of the two actors
        sessions = sorted(line["session"] for line in lines if line["arm"] == arm and line["attempt"] == 1)
        assert len(sessions) > 5 and sessions == list(range(len(sessions)))
        assert {x % 2 for x in sessions} == {0, 1}


# -- refused before anything is sent or written ------------------------------------------


def test_a_remote_cluster_cannot_reach_the_built_in_emulator(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ray, "init", lambda *a, **kw: pytest.fail("connected before refusing"))
    sc = write(tmp_path, OPEN)
    assert main(["run", str(sc), "--out", str(tmp_path / "res"), "--cluster", "ray://10.0.0.9:10001"]) == 2
    err = capsys.readouterr().err
    assert "built-in emulator" in err and "--endpoint-url" in err and "--target aws" in err
    assert "Traceback" not in err
    assert not (tmp_path / "res").exists()


def test_what_workers_refuse_is_refused_on_a_cluster(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ray, "init", lambda *a, **kw: pytest.fail("connected before refusing"))
    sc = batch_scenario(tmp_path)
    assert main(["run", str(sc), "--out", str(tmp_path / "res"), "--cluster", "ray"]) == 2
    err = capsys.readouterr().err
    assert "--cluster: batch arms run in one process" in err
    assert "Traceback" not in err
    assert not (tmp_path / "res").exists()


def test_run_without_ray_installed_exits_2_with_the_install_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    sc = write(tmp_path, OPEN)
    assert main(["run", str(sc), "--out", str(tmp_path / "res"), "--cluster", "ray"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'loadgen[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()


def test_an_unreachable_cluster_exits_3_before_anything_is_written(tmp_path, capsys, monkeypatch):
    def refuse(*a, **kw):
        raise ConnectionError("no Ray cluster at 127.0.0.1:1")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    sc = write(tmp_path, OPEN)
    assert main(["run", str(sc), "--out", str(tmp_path / "res"), "--cluster", "ray://127.0.0.1:1",
                 "--endpoint-url", "http://10.0.0.9:8080"]) == 3
    err = capsys.readouterr().err
    assert "--cluster ray://127.0.0.1:1: cannot connect to Ray" in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()


# -- the pieces ------------------------------------------------------------------------


def test_the_coordinator_state_keeps_one_budget_and_the_first_stop_reason():
    co = CoordinatorState(2, 1, None, 1.0)
    assert co.take_usd(0.2, 0.5) == (0.5, None)
    assert co.take_usd(0.6, 0.6) == (0.0, "max-cost")      # 0.5 left: refused, and for good
    assert co.take_usd(0.1, 0.1) == (0.0, "max-cost")
    counted = CoordinatorState(2, 1, 3, None)
    assert [counted.take_request(0) for _ in range(4)] == [(True, None), (True, None), (True, "max-requests"),
                                                           (False, "max-requests")]
    co.stop("target-failed")
    co.abort()
    assert co.worker_view()[:2] == (2, "target-failed")
    co.report(1, [1.0] * 10)
    assert co.parent_view()["rows"][1][0] == 1.0 and co.parent_view()["rows"][0][0] == 0.0


def test_a_usd_chunk_is_a_small_share_of_the_cap():
    assert usd_chunk(None, 4) == 0.0
    assert usd_chunk(10.0, 4) * 4 == pytest.approx(0.5)     # all segments together: 5 % of the cap


def test_more_segments_than_the_cluster_has_cpus_are_refused(local_ray, tmp_path, capsys):
    """Each segment holds a CPU for the whole run: a third one on 2 CPUs would start after
    the others had finished, every request of it late."""
    sc = write(tmp_path, OPEN)
    assert main(["run", str(sc), "--out", str(tmp_path / "res"), "--cluster", "ray", "--workers", "3"]) == 2
    err = capsys.readouterr().err
    assert "--workers 3" in err and "at most --workers 2" in err and "Traceback" not in err
    assert not (tmp_path / "res").exists()


class _LocalActor:
    """The coordinator actor's methods called in place (`.remote` runs at once; the fake
    `ray.get` returns the value): counts the worker's waiting calls."""

    def __init__(self, state: CoordinatorState) -> None:
        self.state, self.takes = state, 0

        def take_usd(need, want):
            self.takes += 1
            return state.take_usd(need, want)

        self.take_usd = SimpleNamespace(remote=take_usd)
        self.give_usd = SimpleNamespace(remote=state.give_usd)


def test_a_chunk_smaller_than_a_request_still_asks_the_actor_less_than_once_per_request(monkeypatch):
    state = CoordinatorState(2, 1, None, 1.0)
    actor = _LocalActor(state)
    worker = WorkerCoordinator(actor, usd_reserve(1.0, 2))               # 0.05: a reserve of one request
    monkeypatch.setattr(worker, "_ray", lambda: SimpleNamespace(get=lambda ref: ref))
    budget = SegmentBudget(worker, Segment(0, 2), ["a"], max_requests=None, max_cost_usd=1.0, open_loop=True,
                           chunk_usd=usd_chunk(1.0, 2))                  # 0.025, a request's worst case 0.04
    spent, sent = 0.0, 0
    while budget.cover(spent + 0.04):                                    # one request in flight at a time
        spent += 0.03                                                    # it cost less than its worst case
        budget.settle(spent)
        sent += 1
        # every dollar is left in the actor, leased to the budget or in the reserve: never more than the cap
        assert state.pool.usd_left() + budget.leased_usd + worker._reserve == pytest.approx(1.0)
    budget.close(spent)
    worker.close()
    assert spent <= 1.0 and sent >= 30                                   # the cap is a hard limit, nearly reached
    assert actor.takes <= sent / 2                                       # was one wait per request
    assert state.pool.usd_left() == pytest.approx(1.0 - spent)           # every unspent dollar went back


def test_a_worker_that_said_stop_is_not_told_continue_by_an_older_view(monkeypatch):
    worker = WorkerCoordinator(SimpleNamespace(stop=SimpleNamespace(remote=lambda reason: None)))
    monkeypatch.setattr(worker, "_follow", lambda: None)              # no poll thread: the view is set by hand
    worker.stop("target-failed")
    worker._view = (0, None, None, 1.0)                                # the poll thread's view from before the stop
    assert worker.control() == (1, "target-failed")
    worker._view = (2, "interrupted", None, 1.0)                       # a later ABORT still shows
    assert worker.control() == (2, "interrupted")


def test_the_pump_creates_and_kills_a_segment_actor_launch_and_kill_only_hand_it_over(tmp_path):
    """Creating a named actor waits on Ray's GCS, and so may `ray.kill` through Ray Client:
    neither may run on the parent's event loop (launch, kill); the pump's `step` does both,
    and sends a kill once however often the parent asks."""
    made, killed = [], []
    actor = SimpleNamespace(run=SimpleNamespace(remote=lambda spec: "run"))
    fake = SimpleNamespace(kill=lambda a, no_restart: killed.append(a), wait=lambda refs, timeout: ([], refs))
    seg = _Segment(fake, None, SimpleNamespace(index=0), tmp_path / "w0", lambda: made.append(1) or actor)
    assert made == []                                   # launch returned without creating it
    seg.step()
    assert made == [1] and seg.poll() is None
    seg.kill()
    seg.kill()                                          # the parent asks again after its abort wait
    assert killed == []                                 # kill only marks
    seg.step()
    seg.step()
    assert killed == [actor]                            # sent once, by the pump
    early = _Segment(fake, None, SimpleNamespace(index=1), tmp_path / "w1", lambda: pytest.fail("created after its kill"))
    early.kill()
    early.step()
    assert early.poll() == PartOutcome(None, "killed")
