"""Results directory: never overwrites, survives a kill, reads back what it wrote."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen.results.histograms import LATENCY_METRICS, new_histogram
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.engine.record import BATCH_FIELDS, Attempt
from loadgen.results.directory import ResultsDir, load_attempts, load_summary, read_histogram
from loadgen.results.rebuild import rebuild_summary
from loadgen.scenario import load

NOW = datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone.utc)
ARMS = [ArmInfo("ttl-5m", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m"),
        ArmInfo("ttl-1h", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "1h")]
SCENARIO = b'name = "slow-agent"\nseed = 7\n\n[model]\nid = "anthropic.claude-haiku-4-5-20251001-v1:0"  # caf\xc3\xa9\n'


def att(i: int = 0, **kw) -> Attempt:
    d = dict(arm="ttl-5m", session=i, turn=0, attempt=1, intended=i * 0.1, start=i * 0.1 + 0.0012345678,
             first_token=i * 0.1 + 0.3, end=i * 0.1 + 1.0, status="ok", error_code=None,
             model_id=ARMS[0].model_id, profile="geo", region="us-east-1", input_tokens=12, output_tokens=200,
             cache_read=5024, cache_state="warm", cache_predicted="warm", gap_s=61.5, cost_usd=0.00123456789123)
    d.update(kw)
    return Attempt(**d)


def test_create_names_the_dir_after_scenario_and_utc_time_and_makes_the_parent(tmp_path):
    parent = tmp_path / "deep" / "results"
    with ResultsDir.create(parent, "slow-agent", NOW) as r:
        assert r.path == parent / "slow-agent-20260301T123005Z"
    # an aware non-UTC time is converted, so names sort by real time
    with ResultsDir.create(parent, "x", NOW.astimezone(timezone(timedelta(hours=2)))) as r:
        assert r.path.name == "x-20260301T123005Z"
    with ResultsDir.create(parent, "../../etc/passwd", NOW) as r:  # names never escape the parent
        assert r.path.parent == parent


def test_two_runs_in_the_same_second_get_two_directories(tmp_path):
    dirs = []
    for _ in range(3):
        with ResultsDir.create(tmp_path, "s", NOW) as r:
            r.append(att())
            dirs.append(r.path.name)
    assert dirs == ["s-20260301T123005Z", "s-20260301T123005Z-2", "s-20260301T123005Z-3"]
    for d in dirs:  # nobody's file was truncated
        assert len(list(load_attempts(tmp_path / d))) == 1


def test_scenario_is_copied_byte_for_byte(tmp_path):
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        r.write_scenario(SCENARIO)
    assert (r.path / "scenario.toml").read_bytes() == SCENARIO


def test_attempts_round_trip_with_rounded_floats(tmp_path):
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        for i in range(5):
            r.append(att(i))
        r.append(att(5, status="throttled", error_code="ThrottlingException", first_token=None, cost_usd=0.0))
        assert r.attempts_written == 6
    rows = list(load_attempts(r.path))
    assert len(rows) == 6
    assert rows[0]["start"] == 0.001235  # microseconds
    assert rows[0]["cost_usd"] == 0.001234568  # 1e-9 USD
    assert rows[5]["status"] == "throttled" and rows[5]["first_token"] is None
    # every Attempt field, nothing else; the batch fields only on a batch arm's records
    assert set(rows[0]) == {f.name for f in dataclasses.fields(Attempt)} - set(BATCH_FIELDS)


def test_a_batch_record_line_carries_the_batch_fields(tmp_path):
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        r.append(att(0, first_token=None, batch_status="Completed", batch_job="abcdefghij12", batch_submit=10.0,
                     queue_wait_s=5.0, job_s=60.0, cost_stacked_usd=0.001, cost_unstacked_usd=0.002))
    row = next(iter(load_attempts(r.path)))
    assert set(row) == {f.name for f in dataclasses.fields(Attempt)}
    assert (row["batch_job"], row["job_s"], row["cost_unstacked_usd"]) == ("abcdefghij12", 60.0, 0.002)


def test_a_killed_process_loses_at_most_the_attempts_of_its_last_flush_interval(tmp_path):
    """requests.jsonl is buffered: a process killed outright (no close, no flush, no atexit)
    keeps every attempt appended more than `flush_every_s` before the kill; the ones
    appended just before it may be lost, but what is there is a clean prefix."""
    n, late, every = 200, 50, 0.2
    code = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_results import att
        from loadgen.results.directory import ResultsDir
        os.mkdir({str(tmp_path / "killed")!r})
        r = ResultsDir({str(tmp_path / "killed")!r}, flush_every_s={every})
        for i in range({n}):
            r.append(att(i))
        time.sleep({every * 5})  # five flush intervals: a margin for a busy machine
        for i in range({n}, {n + late}):
            r.append(att(i))
        os._exit(1)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    rows = list(load_attempts(tmp_path / "killed"))
    assert len(rows) >= n
    assert [row["session"] for row in rows] == list(range(len(rows)))


def test_summary_and_histograms_never_reach_disk_ahead_of_their_attempts(tmp_path):
    """The report reads requests.jsonl right after summary.json is written, before close."""
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        for i in range(3):
            r.append(att(i))
        m = Metrics(ARMS)
        r.write_histograms(m, scenario_s=1.0)
        assert len(list(load_attempts(r.path))) == 3
        r.append(att(3))
        r.write_summary({"arms": {}})
        assert len(list(load_attempts(r.path))) == 4


def test_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path):
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        r.append(att(0))
        r.append(att(1))
    p = r.path / "requests.jsonl"
    good = p.read_text()
    p.write_text(good + '{"arm":"ttl-5m","sess')
    assert len(list(load_attempts(r.path))) == 2
    p.write_text(good + "garbage\n" + good)
    with pytest.raises(ValueError, match=r"requests.jsonl:3: not a JSON attempt record"):
        list(load_attempts(r.path))


def test_histogram_logs_read_back_with_the_same_count_and_p99(tmp_path):
    m = Metrics(ARMS)
    for i in range(1, 1001):
        m.record(att(i, intended=0.0, start=0.001 * (i % 7), first_token=i / 2000, end=i / 1000))
    m.record(att(arm="ttl-1h", status="throttled", error_code="ThrottlingException", first_token=None))
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        paths = r.write_histograms(m, scenario_s=7200.0, wall_start=NOW.timestamp())
    assert {p.name for p in paths} == {f"{a.name}.{metric}.hlog" for a in ARMS for metric in LATENCY_METRICS}
    for arm in ("ttl-5m", "ttl-1h"):
        for metric in LATENCY_METRICS:
            want = m.histogram(arm, metric)
            path = r.path / "histograms" / f"{arm}.{metric}.hlog"
            # the standard reader, as any HdrHistogram tool would use it
            reader = HistogramLogReader(str(path), new_histogram())
            got = reader.get_next_interval_histogram()
            assert reader.get_next_interval_histogram() is None  # one interval: the whole run
            reader.close()
            assert got.get_total_count() == want.get_total_count()
            assert got.get_value_at_percentile(99) == want.get_value_at_percentile(99)
            assert got.get_end_time_stamp() - got.get_start_time_stamp() == pytest.approx(7200.0 * 1000)
            assert read_histogram(path).get_max_value() == want.get_max_value()
    text = (r.path / "histograms" / "ttl-5m.e2e.hlog").read_text()
    assert text.startswith("#[Histogram log format version 1.2]\n#[StartTime: 1772368205.000 ")
    # the interval max is in ms: the largest e2e was 1 s
    assert re.search(r"^0\.000000,7200\.000000,1000\.000000,HIST", text, re.M)


def test_summary_is_written_atomically_and_reads_back(tmp_path):
    s = {"scenario": "s", "arms": {"a": {"cost_usd": {"total": 1.5, "per_1000": float("nan")}}}}
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        r.write_summary(s)
        r.write_summary(s)  # replacing is fine (atomic rename)
        r.write_text("summary.txt", "ok\n")
        with pytest.raises(ValueError, match="plain file name"):
            r.write_text("../escape.txt", "x")
    assert load_summary(r.path) == {"scenario": "s", "arms": {"a": {"cost_usd": {"total": 1.5, "per_1000": None}}}}
    assert (r.path / "summary.json").read_text().startswith('{\n  "scenario"')
    assert (r.path / "summary.txt").read_text() == "ok\n"
    assert sorted(p.name for p in r.path.iterdir()) == ["requests.jsonl", "summary.json", "summary.txt"]


def test_load_summary_of_an_unfinished_run_says_so(tmp_path):
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        pass
    with pytest.raises(FileNotFoundError, match="no summary.json; expected a finished loadgen results directory"):
        load_summary(r.path)


FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAZZFAKEKEYID00042",
    "AWS_SECRET_ACCESS_KEY": "fakeSecretKeyZZ+9bQwE1xWvU7pK3nLmT5rYs0",
    "AWS_SESSION_TOKEN": "FakeSessionTokenZZ0123456789abcdefXYZ",
}


def test_credentials_in_the_environment_reach_no_result_file_and_no_output(tmp_path):
    """A real `loadgen run` (emulator target, real aiobotocore client) with credentials in the
    environment: botocore reads them (they sign every request), and none may land in the
    results directory or on stdout/stderr."""
    scenario = tmp_path / "creds.toml"
    scenario.write_text(textwrap.dedent("""\
        name = "creds"
        duration = "3s"
        [target]
        time_scale = 1
        [model]
        id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        max_tokens = 16
        [workload]
        kind = "single"
        prefix_tokens = 5024
        question_tokens = 12
        output_tokens = 8
        [arrivals]
        kind = "constant"
        rate = "2/s"
        [emulator]
        latency = "fast"
    """))
    env = {**os.environ, **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1"}
    out = tmp_path / "results"
    p = subprocess.run([sys.executable, "-m", "loadgen", "run", str(scenario), "--out", str(out), "--quiet"],
                       capture_output=True, env=env, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert p.returncode == 0, p.stderr.decode()
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    files = [f for f in run.rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"requests.jsonl", "summary.json", "scenario.toml"}
    assert json.loads((run / "summary.json").read_text())["arms"]["default"]["requests"]["ok"] == 6
    blobs = {str(f): f.read_bytes() for f in files}
    blobs["stdout"], blobs["stderr"] = p.stdout, p.stderr
    for where, blob in blobs.items():
        for name, value in FAKE_CREDENTIALS.items():
            assert value.encode() not in blob, f"{name} leaked into {where}"
            # and not a fragment long enough to identify it either
            assert value[4:16].encode() not in blob, f"part of {name} leaked into {where}"


def test_histogram_interval_defaults_to_the_span_of_the_attempts(tmp_path):
    m = Metrics(ARMS)
    m.record(att(0, intended=100.0, start=100.0, first_token=100.5, end=141.5))
    with ResultsDir.create(tmp_path, "s", NOW) as r:
        r.write_histograms(m)
    got = HistogramLogReader(str(r.path / "histograms" / "ttl-5m.e2e.hlog"), new_histogram())
    h = got.get_next_interval_histogram()
    got.close()
    assert h.get_total_count() == 1
    assert h.get_end_time_stamp() - h.get_start_time_stamp() == pytest.approx(142.0 * 1000)


TIERED = """\
name = "tiers"
seed = 3
duration = "1m"

[model]
id = "openai.gpt-oss-120b-1:0"
max_tokens = 200

[workload]
kind = "single"
prefix_tokens = 1000
question_tokens = 300
output_tokens = 100

[arrivals]
kind = "constant"
rate = "1/s"

[[arms]]
name = "standard"
cache = false

[[arms]]
name = "flex"
cache = false
service_tier = "flex"
"""


def test_a_rebuilt_summary_prices_cost_buckets_at_the_arms_service_tier(tmp_path):
    # a killed run's cost split must be the one the finished run wrote: flex bills at half
    # the standard price, and the split used to come out at the standard price
    (tmp_path / "s.toml").write_text(TIERED)
    p = subprocess.run([sys.executable, "-m", "loadgen", "simulate", str(tmp_path / "s.toml"), "--out",
                        str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    d = next((tmp_path / "out").iterdir())
    want = load_summary(d)["arms"]
    got, _ = rebuild_summary(list(load_attempts(d)), load(str(d / "scenario.toml")), results_dir=d)
    assert want["flex"]["cost_usd"]["input"] == pytest.approx(want["standard"]["cost_usd"]["input"] / 2)
    for arm in ("standard", "flex"):
        assert got["arms"][arm]["cost_usd"] == want[arm]["cost_usd"]
