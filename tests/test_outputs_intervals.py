"""Per-interval outputs: HDR interval logs read back by hdrh's own log reader, the
`--output jsonl` stream, `[outputs]` validation, and the aggregator's pure core."""

from __future__ import annotations

import dataclasses
import json
import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from hdrh.log import HistogramLogReader

from loadgen.commands.cli import main
from loadgen.engine.record import Attempt
from loadgen.results.directory import read_histogram
from loadgen.results.histograms import LATENCY_METRICS, latency_summary, new_histogram, quick_summary
from loadgen.results.interval_logs import IntervalLogs
from loadgen.results.intervals import IntervalAggregator, LiveTotals
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import ScenarioError, loads
from result_files import only_dir, read_results

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"

SCENARIO = f"""
name = "intervals"
seed = 4
duration = "95s"

[model]
id = "{HAIKU}"
max_tokens = 64

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 12
output_tokens = 30

[arrivals]
kind = "poisson"
rate = "4/s"

[retry]
policy = "fixed"
max_attempts = 2
base = "1s"

[emulator.quotas]
rpm = 200

[outputs]
interval = "10s"

[[arms]]
name = "a"

[[arms]]
name = "b"
cache_ttl = "1h"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(textwrap.dedent(text))
    return p


def intervals_of(path: Path) -> list:
    """Every interval histogram in an .hlog, decoded by hdrh's HistogramLogReader: (start,
    end) in scenario seconds (the reader makes them absolute with the #[StartTime] line)."""
    reader = HistogramLogReader(str(path), new_histogram())
    out = []
    try:
        while True:
            h = reader.get_next_interval_histogram()
            if h is None:
                return out
            t0 = reader.get_start_time_sec()
            assert t0 > 1.7e9                                  # the run's wall-clock start
            out.append((round(h.get_start_time_stamp() / 1000.0 - t0, 3),
                        round(h.get_end_time_stamp() / 1000.0 - t0, 3), h))
    finally:
        reader.close()


def test_simulate_writes_interval_logs_that_add_up_to_the_run(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["simulate", str(write(tmp_path, SCENARIO)), "--out", str(out), "--quiet",
                 "--output", "jsonl"]) in (0, 1)
    d = only_dir(out)
    summary, lines = read_results(d)
    assert summary["arms"]["a"]["requests"]["throttled"] > 0   # the quota throttles: failures are in the logs too
    for arm in ("a", "b"):
        ends = [l["end"] for l in lines if l["arm"] == arm]
        for metric in LATENCY_METRICS:
            ivs = intervals_of(d / "histograms" / f"{arm}.{metric}.hlog")
            assert len(ivs) >= 9, (arm, metric)             # a fixed 10 s interval, not one for the whole run
            for start, end, _ in ivs:
                assert end - start == pytest.approx(10.0) and start % 10.0 == pytest.approx(0.0)
            total = new_histogram()
            for _, _, h in ivs:
                total.add(h)
            whole = summary["arms"][arm]["latency_ms"][metric]
            assert total.get_total_count() == whole["count"]
            assert latency_summary(total)["p99"] == whole["p99"] and latency_summary(total)["max"] == whole["max"]
            assert read_histogram(d / "histograms" / f"{arm}.{metric}.hlog").get_total_count() == whole["count"]
        # each interval holds exactly the attempts that ended in it
        for start, end, h in intervals_of(d / "histograms" / f"{arm}.e2e_all.hlog"):
            assert h.get_total_count() == sum(1 for e in ends if start <= e < end)

    rows = [json.loads(x) for x in (d / "intervals.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in rows} == {"a", "b"}
    assert len(rows) == 2 * (max(r["interval"] for r in rows) + 1)   # one line per interval per arm
    for arm in ("a", "b"):
        mine = [r for r in rows if r["arm"] == arm]
        whole = summary["arms"][arm]
        for key in ("sent", "ok", "throttled", "error", "timeout", "retries"):
            assert sum(r["requests"][key] for r in mine) == whole["requests"][key]
        assert sum(r["failed"] for r in mine) == whole["requests"]["sent"] - whole["requests"]["ok"]
        for kind in ("input", "output", "cache_read", "cache_write"):
            assert sum(r["tokens"][kind] for r in mine) == whole["tokens"][kind]
        assert sum(r["cost_usd"] for r in mine) == pytest.approx(whole["cost_usd"]["total"], abs=1e-6)
        assert sum(r["latency_ms"]["e2e_all"]["count"] for r in mine) == whole["latency_ms"]["e2e_all"]["count"]
    assert summary["outputs"]["jsonl"]["lines"] == len(rows)
    assert summary["outputs"]["late"] == 0
    assert "intervals: " in capsys.readouterr().out


def test_jsonl_to_stdout_leaves_stdout_to_the_lines(tmp_path, capsys):
    out = tmp_path / "res"
    main(["simulate", str(write(tmp_path, SCENARIO.replace('duration = "95s"', 'duration = "30s"'))),
          "--out", str(out), "--output", "jsonl=-"])
    cap = capsys.readouterr()
    rows = [json.loads(x) for x in cap.out.splitlines()]      # every stdout line is one JSON object
    assert rows and all(set(r) >= {"interval", "arm", "requests", "tokens", "cost_usd", "latency_ms"} for r in rows)
    assert "results: " in cap.err


def test_output_flag_errors_are_one_line(tmp_path, capsys):
    p = str(write(tmp_path, SCENARIO))
    assert main(["simulate", p, "--out", str(tmp_path / "r"), "--output", "csv"]) == 2
    assert "expected one of jsonl" in capsys.readouterr().err
    assert main(["simulate", p, "--out", str(tmp_path / "r"), "--output", "cloudwatch"]) == 2
    assert "virtual time" in capsys.readouterr().err
    existing = tmp_path / "taken.jsonl"
    existing.write_text("keep me\n")
    assert main(["simulate", p, "--out", str(tmp_path / "r"), "--output", f"jsonl={existing}"]) == 2
    assert "never overwrites" in capsys.readouterr().err
    assert existing.read_text() == "keep me\n"
    assert not (tmp_path / "r").exists()                        # refused before anything was written


@pytest.mark.parametrize("table, where, message", [
    ('[outputs]\ninterval = "500ms"', "outputs.interval", "at least 1s"),
    ('[outputs]\nintervall = "5s"', "outputs.intervall", "did you mean 'interval'"),
    ('[outputs.cloudwatch]\nnamespace = "AWS/Bedrock"', "outputs.cloudwatch.namespace", "reserved"),
    ('[outputs.cloudwatch]\ndimensions = ["arm"]', "outputs.cloudwatch.namespace", "missing"),
    ('[outputs.cloudwatch]\nnamespace = "x"\ndimensions = ["arm", "region"]', "outputs.cloudwatch.dimensions",
     "unknown dimension 'region'"),
    ('[outputs.cloudwatch]\nnamespace = "x"\nstorage_resolution = 5', "outputs.cloudwatch.storage_resolution",
     "expected 1 (high resolution) or 60"),
    ('[outputs]\ninterval = "10s"\n[outputs.cloudwatch]\nnamespace = "x"\ninterval = "15s"',
     "outputs.cloudwatch.interval", "whole multiple"),
    ('[outputs.cloudwatch]\nnamespace = "x"\nmax_queue = 0', "outputs.cloudwatch.max_queue", ">= 1"),
])
def test_outputs_keys_are_checked_at_their_line(table, where, message):
    head = textwrap.dedent(SCENARIO).split("[outputs]")[0] + "[[arms]]\nname = \"a\"\n"
    with pytest.raises(ScenarioError) as e:
        loads(head + table + "\n", "s.toml")
    key = where.rsplit(".", 1)[-1]
    rows = table.splitlines()
    # the key's own line; a missing key is reported at its table's header
    header = next(i for i, l in enumerate(rows, 1) if l == "[" + where.rsplit(".", 1)[0] + "]")
    at = next((i for i, l in enumerate(rows, 1) if i > header and l.startswith(key + " ")), header)
    assert f"s.toml:{len(head.splitlines()) + at}: {where}: " in str(e.value) and message in str(e.value), str(e.value)


def test_outputs_defaults():
    text = textwrap.dedent(SCENARIO).split("[outputs]")[0] + '[[arms]]\nname = "a"\n[outputs.cloudwatch]\nnamespace = "lg"\n'
    sc = loads(text, "s.toml")
    assert sc.outputs.interval == 10.0
    cw = sc.outputs.cloudwatch
    assert (cw.namespace, cw.dimensions, cw.storage_resolution, cw.interval) == ("lg", ("scenario", "arm"), 60, 60.0)
    hi = loads(text + "storage_resolution = 1\n", "s.toml").outputs.cloudwatch
    assert hi.interval == 10.0


# ---- the pure core -------------------------------------------------------------------

INFO = ArmInfo("a", HAIKU, "region", "5m")
BASE = Attempt("a", 0, 0, 1, 0.0, 0.0, None, 0.0, "ok", None, HAIKU, "region", None, cost_usd=0.001)


class Collect:
    def __init__(self) -> None:
        self.seen: list = []
        self.closed = False

    def on_interval(self, iv) -> None:
        self.seen.append(iv)

    def close(self) -> None:
        self.closed = True


def attempt(end: float, lat: float = 0.5, status: str = "ok") -> Attempt:
    return dataclasses.replace(BASE, intended=end - lat, start=end - lat, first_token=end - lat / 2, end=end,
                               status=status, error_code=None if status == "ok" else "ThrottlingException")


def test_a_late_attempt_lands_in_the_next_open_interval_and_is_counted():
    sink = Collect()
    ag = IntervalAggregator([INFO], 10.0, [sink])
    ag.record(attempt(3.0))
    assert ag.close_until(12.0) == 1 and sink.seen[0].index == 0
    ag.record(attempt(9.9))                         # ended in interval 0, reached the sink after it closed
    ag.close_all(15.0)
    assert [iv.index for iv in sink.seen] == [0, 1] and sink.closed
    assert sink.seen[1].arms["a"].late == 1 and ag.late == 1
    assert sum(iv.row("a")["requests"]["sent"] for iv in sink.seen) == 2


def test_without_a_ticker_at_most_two_intervals_stay_open():
    sink = Collect()
    ag = IntervalAggregator([INFO], 1.0, [sink])
    for i in range(100):
        ag.record(attempt(i * 0.7 + 0.6))
        assert len(ag._open) <= 2
    ag.close_all(70.0)
    assert [iv.index for iv in sink.seen] == list(range(70))   # empty intervals too, in order


def test_parts_read_one_after_another_close_only_where_every_part_was_read(tmp_path):
    """A split run's parent: part 0 is read up to 6.5 s, part 1 (written in step, read
    after it) only to 2.5 s. A fresh attempt of part 0 must not close the intervals part 1's
    lines still belong to (`close_on_record=False`), and the ticker closes only where both
    parts were read (`PartTail.read_until`): nothing is late."""
    from loadgen.results.part_tail import PartTail
    from loadgen.scenario import loads as load_text

    sc = load_text(textwrap.dedent(f"""
        name = "t"
        duration = "10s"
        [model]
        id = "{HAIKU}"
        [workload]
        kind = "single"
        prefix_tokens = 64
        output_tokens = 8
        [arrivals]
        kind = "constant"
        rate = "1/s"
        [[arms]]
        name = "a"
        """), "<test>")
    parts = [tmp_path / "worker-0", tmp_path / "worker-1"]
    for p in parts:
        p.mkdir()

    def line(end: float) -> str:
        return json.dumps({**attempt(end).__dict__, "wall_start": 0.0}) + "\n"

    def append(part: Path, text: str) -> None:
        with open(part / "requests.jsonl", "a") as f:
            f.write(text)

    tail = PartTail(parts, sc)
    sink = Collect()
    ag = IntervalAggregator([INFO], 1.0, [sink], close_on_record=False)
    append(parts[0], line(0.6) + line(1.6) + line(6.5))
    half = line(2.7)
    append(parts[1], line(0.7) + line(2.5) + half[:20])   # a write cut mid-line: read once whole
    for a, costs in tail.read():
        ag.record(a, costs)
    assert tail.read_until(floor=-1.0) == 2.5     # part 1 is read only to 2.5 s
    ag.close_until(tail.read_until(floor=-1.0))
    assert [iv.index for iv in sink.seen] == [0, 1]   # not 2 (part 1 may still end in it)
    append(parts[1], half[20:] + line(3.5) + '{"arm": "a", "sess')   # killed mid-write at the end
    for a, costs in tail.finish():
        ag.record(a, costs)
    ag.close_all(10.0)
    assert ag.late == 0 and tail.read_lines == 7
    assert sum(iv.row("a")["requests"]["sent"] for iv in sink.seen) == 7


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 59.9), st.floats(0.001, 30.0), st.booleans()), min_size=1, max_size=60),
       st.sampled_from([1.0, 5.0, 7.5]))
def test_intervals_merge_into_the_whole_run(attempts, interval):
    """The intervals' histograms and counts add up to the whole-run Metrics; two halves
    aggregated apart and merged interval by interval give the same intervals."""
    whole = Metrics([INFO])
    sinks = [Collect(), Collect(), Collect()]
    aggs = [IntervalAggregator([INFO], interval, [s]) for s in sinks]
    # in the order they complete, as a sink sees them
    for i, (end, lat, ok) in enumerate(sorted(attempts, key=lambda x: x[0] + x[1])):
        a = attempt(end + lat, lat, "ok" if ok else "throttled")
        whole.record(a)
        aggs[0].record(a)
        aggs[1 + i % 2].record(a)
    for ag in aggs:
        ag.close_all(100.0)
    total = new_histogram()
    for iv in sinks[0].seen:
        if "a" in iv.arms:
            total.add(iv.arms["a"].metrics.histogram("a", "e2e_all"))
    assert total.get_total_count() == whole.histogram("a", "e2e_all").get_total_count() == len(attempts)
    assert latency_summary(total) == latency_summary(whole.histogram("a", "e2e_all"))
    for one, two, full in zip(sinks[1].seen, sinks[2].seen, sinks[0].seen):
        merged = one.merge(two)
        assert merged.row("a") == full.row("a")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 59.9), st.floats(0.001, 30.0), st.sampled_from(["ok", "throttled", "error"]),
                          st.floats(0.0, 3.0)), min_size=1, max_size=60),
       st.sampled_from([1.0, 5.0, 7.5]))
def test_the_whole_run_built_from_its_intervals_is_the_directly_recorded_one(attempts, interval):
    """An aggregator given the whole-run Metrics records each attempt once (into its
    interval) and yet builds the same whole-run summary, float sums included, as recording
    every attempt into it directly; while intervals are open, LiveTotals shows the same
    counts and recent rates as the direct Metrics."""
    direct, whole = Metrics([INFO]), Metrics([INFO])
    ag = IntervalAggregator([INFO], interval, [Collect()], whole=whole)
    live = LiveTotals(ag)
    for end, lat, status, cost in sorted(attempts, key=lambda x: x[0] + x[1]):
        a = dataclasses.replace(attempt(end + lat, lat, status), cost_usd=cost / 7)
        costs = {"input": cost / 3, "output": cost / 11, "cache_read": 0.0, "cache_write": cost / 13}
        direct.record(a, buckets=costs)
        ag.record(a, costs)
        assert live.snapshot() == direct.snapshot()
        assert live.recent(a.end, 30.0) == direct.recent(a.end, 30.0)
    ag.close_all(100.0)
    assert json.dumps(whole.summary({})) == json.dumps(direct.summary({}))


@pytest.mark.parametrize("seed", range(8))
def test_whole_run_from_intervals_with_late_attempts_two_arms_and_every_field(seed):
    """The same identity on what the sorted property test above never sends: attempts
    reaching the sink out of order (late, into an interval already closed), two arms on
    different profiles and TTLs, every status, cache states and races, gaps, estimated
    usage, and intervals closed mid-run by a ticker."""
    rng = random.Random(seed)
    infos = [INFO, ArmInfo("b", HAIKU, "geo", "1h")]
    for _ in range(5):
        direct, whole = Metrics(infos), Metrics(infos)
        ag = IntervalAggregator(infos, rng.choice([1.0, 2.5, 10.0]), [Collect()], whole=whole)
        live = LiveTotals(ag)
        t = 0.0
        for i in range(rng.randrange(1, 150)):
            t += rng.expovariate(5)
            end = max(0.0, t - rng.random() * 3)   # up to 3 s late: out of order
            lat = rng.random() * 2
            status = rng.choice(["ok", "ok", "ok", "throttled", "error", "timeout"])
            a = Attempt(rng.choice("ab"), i, 0, rng.choice([1, 1, 2]), end - lat, end - lat * 0.9,
                        end - lat / 2 if rng.random() < 0.7 else None, end, status,
                        None if status == "ok" else rng.choice(["X", "Y", "Z"]), HAIKU, "region", None,
                        input_tokens=rng.randrange(100), output_tokens=rng.randrange(50),
                        cache_state=rng.choice(["cold", "warm", "none"]),
                        cache_predicted=rng.choice(["cold", "warm", "none"]), cache_race=rng.random() < 0.1,
                        gap_s=rng.random() * 600 if rng.random() < 0.5 else None, cost_usd=rng.random() / 1000,
                        usage_estimated=rng.random() < 0.2)
            costs = {"input": rng.random() / 3000, "output": rng.random() / 7000,
                     "cache_read": rng.random() / 1e5, "cache_write": rng.random() / 1e4}
            direct.record(a, buckets=costs)
            ag.record(a, costs)
            if rng.random() < 0.1:
                ag.close_until(t)
            assert live.snapshot() == direct.snapshot()
        ag.close_all(t + 1)
        assert json.dumps(whole.summary({})) == json.dumps(direct.summary({}))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10**9), min_size=0, max_size=200))
def test_quick_summary_matches_hdrh(values):
    h = new_histogram()
    for v in values:
        h.record_value(v)
    want = latency_summary(h)
    assert quick_summary(h) == want


def test_interval_logs_are_part_files_until_the_run_ends(tmp_path):
    """A killed run keeps its closed intervals in .hlog.part files (readable), and report,
    which reads .hlog files only, falls back to requests.jsonl instead of trusting them."""
    logs = IntervalLogs(tmp_path, ["a"], wall_start=1.75e9)
    ag = IntervalAggregator([INFO], 10.0, [logs])
    ag.record(attempt(3.0))
    ag.record(attempt(25.0))                          # closes interval 0 (and the empty 1)
    part = tmp_path / "histograms" / "a.e2e_all.hlog.part"
    assert not (tmp_path / "histograms" / "a.e2e_all.hlog").exists()
    assert [h.get_total_count() for _, _, h in intervals_of(part)] == [1]   # flushed as it closed
    ag.close_all(30.0)
    assert not part.exists()
    assert [h.get_total_count() for _, _, h in intervals_of(tmp_path / "histograms" / "a.e2e_all.hlog")] == [1, 1]
