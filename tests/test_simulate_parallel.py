"""`loadgen simulate --workers N`: sweep points and find-max-rate trials side by side, with
the serial answer, and the parallel search's exactness on its own."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.api.fanout import LocalPool, run_all
from loadgen.api.maxrate import Trial, search
from loadgen.api.rate_search import Space
from loadgen.api.search_fanout import run_searches
from loadgen.commands.cli import main
from parallel_results import comparable
from result_files import only_dir
from test_simulate_maxrate import write as write_capacity

HERE = Path(__file__).resolve().parent
CROSSOVER = HERE.parent / "scenarios" / "ttl-crossover.toml"
SWEEP = "sessions.think_time.median=1m,6m,45m"


@pytest.mark.slow
def test_a_two_worker_sweep_writes_what_the_serial_sweep_writes(tmp_path, capsys):
    assert main(["simulate", str(CROSSOVER), "--sweep", SWEEP, "--out", str(tmp_path / "one")]) == 0
    serial = capsys.readouterr().out
    assert main(["simulate", str(CROSSOVER), "--sweep", SWEEP, "--out", str(tmp_path / "two"), "--workers", "2"]) == 0
    parallel = capsys.readouterr().out
    one, two = only_dir(tmp_path / "one"), only_dir(tmp_path / "two")
    assert comparable(one, "sweep.json") == comparable(two, "sweep.json")
    assert len(comparable(two, "sweep.json")) == 2 + 3 * 3  # sweep.json, sweep.csv, 3 points x 3 files
    assert (two / "sweep-median.png").exists() and all((two / p / "report.html").exists()
                                                        for p in ("00-median=1m", "01-median=6m", "02-median=45m"))
    # the printed table and crossovers too; the header says where the points ran
    assert "on 2 local processes" in parallel

    def tail(out: str) -> list[str]:
        return [x for x in out.splitlines() if not x.startswith(("loadgen ", "  [", "results:"))]
    assert tail(serial) == tail(parallel) and "crossovers" in parallel
    # one progress line per finished point, whatever order they finished in
    assert sorted(x.split("]")[0] for x in parallel.splitlines() if x.startswith("  [")) == \
        ["  [1/3", "  [2/3", "  [3/3"]


@pytest.mark.slow
def test_two_workers_find_the_serial_max_rate_trial_for_trial(tmp_path, capsys):
    sc = write_capacity(tmp_path, "tpm = 60000")
    text = sc.read_text() + '\n[[arms]]\nname = "geo"\nprofile = "geo"\ncache = false\n'
    sc.write_text(text)
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "two"), "--workers", "2",
                 "--quiet"]) == 0
    one, two = only_dir(tmp_path / "one"), only_dir(tmp_path / "two")
    assert comparable(one, "maxrate.json") == comparable(two, "maxrate.json")
    doc = json.loads((two / "maxrate.json").read_text())
    assert set(doc["arms"]) == {"in-region", "geo"} and len(doc["arms"]["geo"]["trials"]) >= 4
    assert (two / "geo" / "summary.json").exists()  # the results directory at the rate found


@pytest.mark.parametrize("flags,message", [
    (["--workers", "0"], "--workers: expected a whole number >= 1 or 'auto'"),
    (["--workers", "many"], "--workers: expected a whole number >= 1 or 'auto'"),
    (["--cluster", "spark"], "--cluster: expected 'ray' or 'ray://HOST:PORT'"),
])
def test_bad_placement_flags_exit_2_before_anything_runs(tmp_path, capsys, flags, message):
    assert main(["simulate", str(CROSSOVER), "--sweep", SWEEP, *flags, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cluster_ray_without_ray_installed_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["simulate", str(CROSSOVER), "--sweep", SWEEP, "--cluster", "ray", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'loadgen[ray]'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_ctrl_c_keeps_the_points_in_hand_and_writes_the_sweep(tmp_path):
    out = tmp_path / "out"
    flag = "sessions.think_time.median=1m,4m,6m,20m,45m,70m"
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "simulate", str(CROSSOVER), "--sweep", flag,
                          "--workers", "2", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    while not line.startswith("  [") and p.poll() is None:  # the first point finished
        line = p.stdout.readline()
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: partial sweep written" in stderr
    doc = json.loads((only_dir(out) / "sweep.json").read_text())
    assert doc["interrupted"] is True and doc["exit_code"] == 130 and 1 <= doc["points_done"] < 6
    # the points in hand finished whole: every one written is complete, none cut short
    assert all(r["stopped"] == "completed" and r["sent"] == 12 for r in doc["rows"])
    assert len(doc["rows"]) == 2 * doc["points_done"] and "interrupted_point" not in doc


# ---- the parallel search, pure ------------------------------------------------------

class _ShuffledPool:
    """A Fanout that runs jobs in this process and finishes them in a random order."""

    ships_files = False
    where = "test"

    def __init__(self, width: int, rng: random.Random) -> None:
        self.width, self.rng, self.jobs = width, rng, []

    def submit(self, key, fn, *args):
        self.jobs.append((key, fn, args))

    def done(self, timeout):
        key, fn, args = self.jobs.pop(self.rng.randrange(len(self.jobs)))
        return [(key, fn(*args), None)]

    def in_flight(self):
        return len(self.jobs)

    def abort(self):
        self.jobs.clear()

    def close(self):
        pass


class _Never:
    set = False


def _probe(limit: float, flaky: frozenset[int]):
    # pass below the limit, except a few rates whose outcome flips (the search must follow
    # the same non-monotone path serially and in parallel)
    def probe(rate: float) -> Trial:
        ok = (rate <= limit) != (int(rate * 1000) % 7 in flaky)
        return Trial(rate, ok, 0, (), ())
    return probe


@settings(max_examples=60, deadline=None)
@given(limit=st.floats(0.001, 6000), start=st.floats(0.01, 500), width=st.integers(1, 5),
       seed=st.integers(0, 10**6), flaky=st.frozensets(st.integers(0, 6), max_size=2),
       arms=st.integers(1, 3))
def test_parallel_search_takes_the_serial_path_trial_for_trial(limit, start, width, seed, flaky, arms):
    probe = _probe(limit, flaky)
    serial = search(probe, start)
    spaces = {f"arm{i}": Space(start) for i in range(arms)}
    got = run_searches(_ShuffledPool(width, random.Random(seed)), spaces, lambda key, rate: (probe, (rate,)),
                       lambda t: t.passed, _Never())
    for s in got.values():
        assert s.finished and [t.rate for t in s.trials] == [t.rate for t in serial[2]]
        good = s.trials[s.bounds.good] if s.bounds.good is not None else None
        bad = s.trials[s.bounds.bad] if s.bounds.bad is not None else None
        assert (good, bad) == (serial[0], serial[1])


def test_speculation_runs_ahead_only_when_workers_are_spare():
    limit = 7.3
    calls: list[float] = []

    def probe(rate: float) -> Trial:
        calls.append(rate)
        return Trial(rate, rate <= limit, 0, (), ())

    one = run_searches(_ShuffledPool(1, random.Random(1)), {"a": Space(1.0)}, lambda k, r: (probe, (r,)),
                       lambda t: t.passed, _Never())["a"]
    assert one.unused == 0 and len(calls) == len(one.trials)
    calls.clear()
    three = run_searches(_ShuffledPool(3, random.Random(1)), {"a": Space(1.0)}, lambda k, r: (probe, (r,)),
                         lambda t: t.passed, _Never())["a"]
    assert [t.rate for t in three.trials] == [t.rate for t in one.trials]
    assert three.unused > 0 and len(set(calls)) == len(three.trials) + three.unused


def test_the_space_replays_the_search():
    sp = Space(1.0, tolerance=0.05)
    assert sp.plan([]).next == 1.0
    assert sp.plan([(1.0, True)]).next == 2.0
    assert sp.plan([(1.0, False)]).next == 0.5
    b = sp.plan([(1.0, True), (2.0, False)])
    assert b.next == pytest.approx(2 ** 0.5) and (b.good, b.bad) == (0, 1)
    # what may come next, shallowest first; outcomes known are followed, running ones skipped
    assert sp.lookahead([], {}, set(), depth=2) == [(0, 1.0), (1, 0.5), (1, 2.0)]
    assert sp.lookahead([], {1.0: True}, {2.0}, depth=2) == [(1, pytest.approx(2 ** 0.5)), (1, 4.0)]


def test_the_local_pool_runs_every_job_in_other_processes():
    pool = LocalPool(2)
    got: dict = {}
    try:
        assert run_all(pool, [(i, os.getpid, ()) for i in range(4)], got.__setitem__, _Never()) == []
    finally:
        pool.close()
    assert set(got) == {0, 1, 2, 3} and os.getpid() not in got.values()
