"""`loadgen run --workers N`: the schedule split over processes sends what one process
sends, every attempt accounted, one budget, one merged results directory."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.commands.cli import build_parser, main
from loadgen.engine.budget import SegmentBudget, SharedMemoryPool
from loadgen.engine.expectations import CacheExpectations
from loadgen.engine.schedule import Segment
from loadgen.engine.workload import Checkpoint
from loadgen.results.directory import read_histogram
from loadgen.results.histograms import LATENCY_METRICS
from loadgen.results.rebuild import rebuild_summary
from result_files import only_dir, read_results

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"

# Open loop, two arms, 20 scenario seconds at x10: about 2 s of wall time per run.
OPEN = f"""
name = "split"
seed = 5
duration = "20s"

[target]
time_scale = 10
max_in_flight = 64

[model]
id = "us.{HAIKU}"
max_tokens = 64
stream = true

[workload]
kind = "single"
prefix_tokens = 5024
question_tokens = {{ dist = "uniform", low = 10, high = 40 }}
output_tokens = 20

[arrivals]
kind = "poisson"
rate = "8/s"

[emulator]
latency = "fast"

[[arms]]
name = "a"

[[arms]]
name = "b"
cache_ttl = "1h"
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def run_cli(parent: Path, scenario: Path, out: str, *flags: str) -> tuple[int, dict, list[dict]]:
    res = parent / out
    code = main(["run", str(scenario), "--out", str(res), "--quiet", *flags])
    summary, lines = read_results(only_dir(res))
    return code, summary, lines


def accounted(summary: dict, lines: list[dict]) -> None:
    for name, arm in summary["arms"].items():
        r = arm["requests"]
        assert r["sent"] == r["ok"] + r["throttled"] + r["error"] + r["timeout"]
        assert r["sent"] == sum(1 for line in lines if line["arm"] == name)


def first_attempts(lines: list[dict]) -> list[tuple]:
    return sorted((line["arm"], line["session"], line["turn"]) for line in lines if line["attempt"] == 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One scenario run by one worker, by two, and by two under --max-requests (each run
    costs a few seconds of process start-up, so the tests share them)."""
    d = tmp_path_factory.mktemp("workers")
    sc = write(d, OPEN)
    return {"dir": d, "one": run_cli(d, sc, "one"), "two": run_cli(d, sc, "two", "--workers", "2"),
            "capped": run_cli(d, sc, "capped", "--workers", "2", "--max-requests", "25")}


@pytest.mark.slow
def test_two_workers_send_exactly_the_one_worker_request_set(runs):
    code1, s1, l1 = runs["one"]
    code2, s2, l2 = runs["two"]
    assert code1 == code2 == 0
    accounted(s1, l1)
    accounted(s2, l2)
    assert len(first_attempts(l1)) > 200
    assert first_attempts(l2) == first_attempts(l1)                  # same count, same identities
    assert s2["workers"] == 2 and s2["clock"] == "scaled" and "workers" not in s1
    assert not (only_dir(runs["dir"] / "two") / "parts").exists()    # merged into requests.jsonl
    for arm in s2["arms"].values():
        # each worker's cache model cannot see the other's writes of the shared prefix:
        # such predictions are races, never false mismatches
        assert arm["cache"]["mismatch"]["total"] == 0
        assert arm["cache"]["warm"] > 0


@pytest.mark.slow
def test_max_requests_is_one_budget_and_the_first_arrivals_by_index(runs):
    code, s2, l2 = runs["capped"]
    assert code == 0
    accounted(s2, l2)
    # one worker sends arrivals in index order, so its first 25 are indexes 0..24 of each arm
    assert first_attempts(l2) == sorted((a, i, 0) for a in ("a", "b") for i in range(25))
    assert s2["stopped"] == "max-requests"


@pytest.mark.slow
def test_merged_histograms_are_the_histograms_of_every_record(runs):
    _, summary, lines = runs["two"]
    d = only_dir(runs["dir"] / "two")
    rebuilt, metrics = rebuild_summary(lines, None)
    for arm in summary["arms"]:
        for metric in LATENCY_METRICS:
            merged = read_histogram(d / "histograms" / f"{arm}.{metric}.hlog")
            direct = metrics.histogram(arm, metric)
            assert merged.get_total_count() == direct.get_total_count()
            assert list(merged.counts) == list(direct.counts), (arm, metric)
        assert summary["arms"][arm]["latency_ms"] == rebuilt["arms"][arm]["latency_ms"]
        assert summary["arms"][arm]["requests"] == rebuilt["arms"][arm]["requests"]


@pytest.mark.slow
def test_a_split_run_streams_every_worker_attempt_into_its_intervals(tmp_path):
    """`--output jsonl` with --workers: the parent reads the parts as they grow, so the
    interval stream and the HDR interval logs hold every worker's attempts, and intervals
    close while the run goes (6 s of wall time, 1 s intervals, closed ~3 s after their end)."""
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "12s"').replace("time_scale = 10", "time_scale = 2")
               .replace("[emulator]", '[outputs]\ninterval = "1s"\n\n[emulator]'))
    stream = tmp_path / "stream.jsonl"
    seen: list[tuple[float, int]] = []   # (monotonic s, bytes of the stream) while the run goes
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            seen.append((time.monotonic(), stream.stat().st_size if stream.exists() else 0))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, summary, lines = run_cli(tmp_path, sc, "streamed", "--workers", "2", "--output", f"jsonl={stream}")
    finally:
        done.set()
        watcher.join()
    ended = time.monotonic()
    assert code == 0
    accounted(summary, lines)
    assert {line["session"] % 2 for line in lines} == {0, 1}   # both workers sent
    d = only_dir(tmp_path / "streamed")
    rows = [json.loads(x) for x in stream.read_text().splitlines()]
    out = summary["outputs"]
    assert out["jsonl"]["lines"] == len(rows) and out["intervals"] >= 12
    # closed only by the parent's ticker, ~3 s after their end: a fresh line of one part
    # must not close the interval the other part's unread lines belong to
    assert out["late"] <= 2, out
    for name, arm in summary["arms"].items():
        assert sum(r["requests"]["sent"] for r in rows if r["arm"] == name) == arm["requests"]["sent"] > 20
        assert sum(r["tokens"]["output"] for r in rows if r["arm"] == name) == arm["tokens"]["output"]
    _, metrics = rebuild_summary(lines, None)
    for name in summary["arms"]:
        for metric in LATENCY_METRICS:
            logged = read_histogram(d / "histograms" / f"{name}.{metric}.hlog")
            assert list(logged.counts) == list(metrics.histogram(name, metric).counts), (name, metric)
    streamed = [t for t, size in seen if size > 0]
    assert streamed and streamed[0] < ended - 2.0, "every interval was written at the end: none while the run went"


@pytest.mark.slow
def test_max_cost_is_one_budget_for_all_workers(tmp_path):
    # Each request reserves its worst case (~$0.0104: 5,064 input tokens written at the 1h
    # price, 64 output) until it ends, and dispatch stops once spend + reservations + the
    # next worst case would pass the cap. $0.10 holds ~9 worst cases: a loaded machine,
    # with more requests in flight, still lets the later-starting worker send before the
    # stop ($0.05 held 4, all of them sent by worker 0 at load 12). The run costs ~$0.24
    # uncapped, so the cap still stops it.
    sc = write(tmp_path, OPEN)
    cap = 0.10
    code, s2, l2 = run_cli(tmp_path, sc, "two", "--workers", "2", "--max-cost-usd", str(cap))
    assert code == 0
    accounted(s2, l2)
    spent = sum(a["cost_usd"]["total"] for a in s2["arms"].values())
    assert s2["stopped"] == "max-cost"
    assert spent <= cap             # N budgets would let it reach N x cap
    # both workers sent (odd and even arrivals) from the one budget; leases are tested alone below
    assert {line["session"] % 2 for line in l2} == {0, 1}


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_merges_the_partial_results(tmp_path):
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "10m"').replace("time_scale = 10", "time_scale = 1"))
    out = tmp_path / "res"
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--workers", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until both workers have attempts on disk
        parts = list(out.glob("*/parts/worker-*/requests.jsonl"))
        if len(parts) == 2 and all(q.stat().st_size > 1000 for q in parts):
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    d = only_dir(out)
    summary, lines = read_results(d)
    assert summary["stopped"] == "interrupted"
    accounted(summary, lines)
    assert sum(a["requests"]["sent"] for a in summary["arms"].values()) > 10
    assert not (d / "parts").exists()
    assert "interrupted: partial results written" in stderr


def _worker_pid(parent: int, index: int) -> int | None:
    """The pid of the child of `parent` that has worker `index`'s part open."""
    for task in Path(f"/proc/{parent}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if f"parts/worker-{index}/" in os.readlink(fd):
                        return int(pid)
                except OSError:
                    continue
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the worker process through /proc")
def test_a_killed_worker_is_reported_and_its_written_attempts_count(tmp_path):
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "8s"').replace("time_scale = 10", "time_scale = 1"))
    out = tmp_path / "res"
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "run", str(sc), "--out", str(out), "--workers", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    victim = None
    while time.monotonic() < deadline:
        part = list(out.glob("*/parts/worker-1/requests.jsonl"))
        if part and part[0].stat().st_size > 1000:
            victim = _worker_pid(p.pid, 1)
            break
        time.sleep(0.05)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=90)
    assert "worker 1 ended without its part (exit code -9)" in stderr
    summary, lines = read_results(only_dir(out))
    accounted(summary, lines)
    assert summary["stopped"] == "worker-died"
    odd = [line["session"] for line in lines if line["session"] % 2]
    even = [line["session"] for line in lines if line["session"] % 2 == 0]
    assert odd                                         # the killed worker's attempts are in the run
    assert max(odd) < max(even) - 10                   # and it sent none after it died


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "100000"])
def test_bad_workers_values_exit_2_with_a_clear_message(tmp_path, value, capsys):
    sc = write(tmp_path, OPEN)
    assert main(["run", str(sc), "--out", str(tmp_path / "res"), "--workers", value]) == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "auto" in err
    assert "Traceback" not in err
    assert not (tmp_path / "res").exists()


def test_workers_auto_is_the_number_of_cores():
    args = build_parser().parse_args(["run", "x.toml", "--workers", "auto"])
    assert args.workers == (os.cpu_count() or 1)


# -- the pieces ------------------------------------------------------------------------


def test_a_segment_cannot_see_another_process_cache_the_shared_prefix():
    """Split over processes, a cold prediction on the shared system prefix is a race."""
    system = (Checkpoint(("system", "a"), 5000, "5m"),)
    alone = CacheExpectations(4096)
    split = CacheExpectations(4096, others_write_shared=True)
    for ex in (alone, split):
        first = ex.predict(system, 0.0)
        assert first.state == "cold"
    assert not alone.predict(system, 0.0).race
    assert split.predict(system, 0.0).race
    # a session's own prefix only its segment sends: no race there
    own = (Checkpoint(("session", "a", 3, 0), 6000, "5m"),)
    assert not split.predict(own, 0.0).race


class _Ctx:
    """multiprocessing's shared-memory constructors, in one process (for the pool alone)."""

    import multiprocessing as _mp

    Lock = staticmethod(_mp.get_context("spawn").Lock)
    RawArray = staticmethod(_mp.get_context("spawn").RawArray)


@settings(max_examples=60, deadline=None)
@given(cap=st.floats(0.01, 5.0), chunk=st.sampled_from([0.0, 0.05, 1.0]),
       costs=st.lists(st.tuples(st.integers(0, 2), st.floats(0.001, 0.3), st.floats(0.0, 1.0)), max_size=60))
def test_leases_never_let_the_workers_together_pass_the_cap(cap, chunk, costs):
    """Three runners admit requests (worst case `w`, actual `w * f`) in any interleaving:
    their spend plus reservations never passes the cap, and closing returns the rest."""
    pool = SharedMemoryPool(_Ctx, 1, None, cap)
    runners = [SegmentBudget(pool, Segment(i, 3), ["a"], max_requests=None, max_cost_usd=cap, open_loop=True,
                             chunk_usd=chunk) for i in range(3)]
    spent = [0.0, 0.0, 0.0]
    for who, worst, frac in costs:
        b = runners[who]
        if b.cover(spent[who] + worst):
            spent[who] += worst * frac   # booked; the reservation is released
            b.settle(spent[who])
        assert sum(spent) <= cap + 1e-9
        assert sum(r.leased_usd for r in runners) + pool.usd_left() == pytest.approx(cap)
    for who, b in enumerate(runners):
        b.close(spent[who])
    assert pool.usd_left() == pytest.approx(cap - sum(spent))


def test_open_loop_requests_are_capped_by_schedule_index():
    pool = SharedMemoryPool(_Ctx, 2, 10, None)
    seg = SegmentBudget(pool, Segment(1, 3), ["a", "b"], max_requests=10, max_cost_usd=None, open_loop=True)
    allowed = [k for k in range(1, 30, 3) if seg.first_attempt("a", k)[0]]
    assert allowed == [1, 4, 7]                       # its share of indexes 0..9
    assert seg.first_attempt("a", 7) == (True, True)  # and it knows 7 is its last


def test_session_requests_share_one_count_per_arm():
    pool = SharedMemoryPool(_Ctx, 2, 3, None)
    segs = [SegmentBudget(pool, Segment(i, 2), ["a", "b"], max_requests=3, max_cost_usd=None, open_loop=False)
            for i in range(2)]
    got = [segs[k % 2].first_attempt("a", 0)[0] for k in range(6)]
    assert got == [True, True, True, False, False, False]
    assert pool.exhausted() is None                    # arm b still has its 3
    assert all(segs[0].first_attempt("b", 0)[0] for _ in range(3))
    assert pool.exhausted() == "max-requests"


def test_results_format_doc_says_how_parts_are_read():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "results-format.md").read_text()
    assert "parts/worker-" in doc


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


_LINE = re.compile(r"\[(\d+):(\d\d):(\d\d) / .*?\] sent (\d+) .*?\| (\d+) rpm ([\d.]+)k tpm")


@pytest.mark.slow
def test_the_split_status_line_shows_what_was_sent_in_the_last_minute(tmp_path, monkeypatch):
    """`--workers 2` on a terminal: the rpm of the status line is the count sent in the last
    60 scenario seconds, as one process shows it: all that was sent, during the first minute;
    less than all after it; never more than was sent (it once read several times that)."""
    sc = write(tmp_path, OPEN.replace('duration = "20s"', 'duration = "90s"').replace("time_scale = 10", "time_scale = 15"))
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    code = main(["run", str(sc), "--out", str(tmp_path / "r"), "--workers", "2"])
    monkeypatch.undo()
    assert code == 0
    lines = [m.groups() for m in _LINE.finditer(term.getvalue())]
    assert len(lines) >= 6, term.getvalue()[-2000:]
    early = late = 0
    for h, m, s, sent, rpm, _ in lines:
        now, sent, rpm = int(h) * 3600 + int(m) * 60 + int(s), int(sent), int(rpm)
        assert rpm <= sent, lines
        if now < 55:                      # the window holds the whole run so far
            assert rpm == sent, (now, sent, rpm)
            early += 1
        elif 70 <= now <= 90:             # 60 s of 70-90 s at a steady rate (rows up to ~8 s old)
            assert 0.4 * sent < rpm < sent, (now, sent, rpm)
            late += 1
    assert early and late, lines
    summary, _ = read_results(only_dir(tmp_path / "r"))
    tokens = sum(a["tokens"]["input"] + a["tokens"]["cache_write"] + a["tokens"]["output"]
                 for a in summary["arms"].values())
    assert 0 < float(lines[-1][5]) * 1000 <= tokens + 50, (lines[-1], tokens)   # tpm: the same window
