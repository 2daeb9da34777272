"""CloudWatch output against moto's server on 127.0.0.1 with real clients: the documented
metrics arrive (listed and summed through boto3), and a CloudWatch outage loses datums,
counted and reported, never load-test records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import anyio
import boto3
import pytest
from moto.server import ThreadedMotoServer

import loadgen
from loadgen.api.cloudwatch import CloudWatchSink
from loadgen.api.outputs import OutputFlags
from loadgen.commands.cli import main
from loadgen.engine.record import Attempt
from loadgen.engine.transport import TargetError
from loadgen.results.cloudwatch_data import (CALL_BYTES_BUDGET, arm_datums, MAX_DATUMS_PER_CALL, MAX_VALUES_PER_DATUM, METRICS,
                                             calls, datum_bytes)
from loadgen.results.intervals import IntervalAggregator
from loadgen.results.metrics import ArmInfo
from loadgen.scenario import loads
from result_files import only_dir, read_results
from scenario_text import HAIKU, haiku_scenario


SCENARIO = haiku_scenario(name="cw", seed=5, duration="{duration}", time_scale=10, rate="2/s", tables="""
[emulator.quotas]
rpm = 40

[outputs]
interval = "2s"

[outputs.cloudwatch]
namespace = "loadgen-test"
dimensions = ["scenario", "arm", "profile"]
storage_resolution = 1
""", arms="""
[[arms]]
name = "a"

[[arms]]
name = "b"
cache_ttl = "1h"
""")


@pytest.fixture
def moto_cw(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # moto's backends are per process, shared by every server in it: start from none
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")       # moto's; never a real credential
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield server, boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=url)
    server.stop()


def write(tmp_path: Path, duration: str) -> Path:
    p = tmp_path / "cw.toml"
    p.write_text(textwrap.dedent(SCENARIO.replace("{duration}", duration)))
    return p


def stat_sum(cw, name: str, arm: str, stat: str = "Sum") -> float:
    now = dt.datetime.now(dt.timezone.utc)
    dims = [{"Name": "Scenario", "Value": "cw"}, {"Name": "Arm", "Value": arm}, {"Name": "Profile", "Value": "geo"}]
    got = cw.get_metric_statistics(Namespace="loadgen-test", MetricName=name, Dimensions=dims,
                                   StartTime=now - dt.timedelta(hours=1), EndTime=now + dt.timedelta(hours=1),
                                   Period=3600, Statistics=[stat])
    return sum(p[stat] for p in got["Datapoints"])


def assert_accounted(d: Path) -> dict:
    summary, lines = read_results(d)
    for name, arm in summary["arms"].items():
        r = arm["requests"]
        assert r["sent"] == r["ok"] + r["throttled"] + r["error"] + r["timeout"]
        assert r["sent"] == sum(1 for l in lines if l["arm"] == name)
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "cli --workers 2", "loadgen.run(workers=2)"])
def test_run_sends_the_documented_metrics(moto_cw, tmp_path, capsys, how):
    """One process, and split over two (the parent sends what its workers' parts hold),
    from the command and from the Python API (no `outputs=`: the scenario's table asks)."""
    _, cw = moto_cw
    out = tmp_path / "res"
    if how.startswith("cli"):
        split = ["--workers", "2"] if "workers" in how else []
        assert main(["run", str(write(tmp_path, "20s")), "--out", str(out), "--quiet", *split]) == 0
        assert "cloudwatch: " in capsys.readouterr().out
    else:
        res = anyio.run(lambda: loadgen.run(str(write(tmp_path, "20s")), out=out, workers=2, signals=False))
        assert res.exit_code == 0
    summary = assert_accounted(only_dir(out))
    figures = summary["outputs"]["cloudwatch"]
    assert figures["sent"] > 0 and figures["dropped"] == 0 and figures["failed"] == 0, figures

    listed = cw.list_metrics(Namespace="loadgen-test")["Metrics"]
    assert {m["MetricName"] for m in listed} == set(METRICS)
    assert {d["Name"] for m in listed for d in m["Dimensions"]} == {"Scenario", "Arm", "Profile"}
    for arm in ("a", "b"):
        s = summary["arms"][arm]
        assert stat_sum(cw, "Attempts", arm) == s["requests"]["sent"]
        assert stat_sum(cw, "Throttles", arm) == s["requests"]["throttled"] > 0
        assert stat_sum(cw, "CacheReadTokens", arm) == s["tokens"]["cache_read"]
        assert stat_sum(cw, "OutputTokens", arm) == s["tokens"]["output"]
        assert stat_sum(cw, "CostUSD", arm) == pytest.approx(s["cost_usd"]["total"], rel=1e-6)
        assert stat_sum(cw, "TTFT", arm, "SampleCount") == s["latency_ms"]["ttft"]["count"]
        assert stat_sum(cw, "E2EAllAttempts", arm, "SampleCount") == s["requests"]["sent"]
        assert stat_sum(cw, "E2E", arm, "Maximum") == pytest.approx(s["latency_ms"]["e2e"]["max"], rel=2e-3)


@pytest.mark.slow
def test_cloudwatch_down_loses_datums_not_records(monkeypatch, tmp_path, capsys):
    with socket.socket() as s:       # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    out = tmp_path / "res"
    t0 = time.monotonic()
    assert main(["run", str(write(tmp_path, "10s")), "--out", str(out), "--quiet"]) == 0
    assert time.monotonic() - t0 < 30         # the drain at the end is bounded
    summary = assert_accounted(only_dir(out))
    figures = summary["outputs"]["cloudwatch"]
    assert figures["sent"] == 0 and figures["failed"] + figures["dropped"] > 0
    assert "EndpointConnectionError" in figures["last_error"]
    assert "lost (" in capsys.readouterr().out


@pytest.mark.slow
def test_cloudwatch_stopping_mid_run_is_counted(moto_cw, tmp_path):
    server, cw = moto_cw

    def stop_after_first_datums() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not cw.list_metrics(Namespace="loadgen-test")["Metrics"]:
            time.sleep(0.1)
        server.stop()

    stopper = threading.Thread(target=stop_after_first_datums)
    stopper.start()
    try:
        res = anyio.run(lambda: loadgen.run(str(write(tmp_path, "60s")), out=tmp_path / "res", signals=False))
    finally:
        stopper.join()
    summary = assert_accounted(res.path)
    figures = summary["outputs"]["cloudwatch"]
    assert figures["sent"] > 0, figures                       # before the outage
    assert figures["failed"] + figures["dropped"] > 0, figures  # after it: lost and counted
    assert summary["stopped"] == "completed"


def test_no_credentials_is_said_before_the_run(monkeypatch, tmp_path, capsys):
    """CloudWatch output with nothing to sign PutMetricData with: exit 3 before anything is
    written or sent (the command and the Python API), not a run whose datums all fail."""
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out = tmp_path / "res"
    assert main(["run", str(write(tmp_path, "10s")), "--out", str(out), "--quiet"]) == 3
    assert "CloudWatch output: no AWS credentials found" in capsys.readouterr().err
    plain = tmp_path / "plain.toml"   # the same scenario without the table, --output cloudwatch asks
    plain.write_text(write(tmp_path, "10s").read_text().split("[outputs.cloudwatch]")[0])
    assert main(["run", str(plain), "--out", str(out), "--quiet", "--output", "cloudwatch"]) == 3
    with pytest.raises(TargetError, match="no AWS credentials"):
        anyio.run(lambda: loadgen.run(str(plain), out=out, outputs=OutputFlags(cloudwatch=True), signals=False))
    assert not out.exists()
    assert main(["run", str(plain), "--out", str(out), "--quiet", "--max-requests", "1"]) == 0  # no CloudWatch: runs


# ---- the pure parts and the queue ----------------------------------------------------

INFO = ArmInfo("a", HAIKU, "region", "5m")


def test_calls_stay_within_the_api_limits():
    many = [{"MetricName": "Attempts", "Dimensions": [{"Name": "Arm", "Value": "a"}], "Value": 1.0}] * 2500
    assert [len(c) for c in calls(many)] == [MAX_DATUMS_PER_CALL, MAX_DATUMS_PER_CALL, 500]
    wide = [{"MetricName": "E2E", "Dimensions": [], "Values": [1.0] * MAX_VALUES_PER_DATUM,
             "Counts": [1.0] * MAX_VALUES_PER_DATUM}] * 200
    for c in calls(wide):
        assert sum(datum_bytes(d) for d in c) <= CALL_BYTES_BUDGET
        assert len(json.dumps(c)) < 1_000_000          # well inside the 1 MB request limit


def test_a_wide_latency_histogram_is_split_at_150_values_and_the_queue_is_bounded():
    sc = loads(textwrap.dedent(SCENARIO.replace("{duration}", "10s")), "s.toml")
    info = ArmInfo.from_arm(sc.arms[0])
    cfg = dataclasses.replace(sc.outputs.cloudwatch, max_queue=10, interval=2.0)
    sink = CloudWatchSink(cfg, sc, [info], base_interval=2.0)
    seen = []
    ag = IntervalAggregator([info], 2.0, [sink])
    ag.sinks.insert(0, type("Tap", (), {"on_interval": lambda self, iv: seen.append(iv), "close": lambda self: None})())
    base = Attempt("a", 0, 0, 1, 0.0, 0.0, None, 0.0, "ok", None, info.model_id, "geo", None, cost_usd=0.001)
    for i in range(400):                                    # 400 distinct latencies in one interval
        lat = 0.001 + i * 0.002
        ag.record(dataclasses.replace(base, intended=1.0, start=1.0, first_token=1.0 + lat / 2, end=1.0 + lat))
    ag.close_all(2.0, wall=time.time())
    full = arm_datums(seen[0].arms["a"], info, sink.dims["a"], dt.datetime.now(dt.timezone.utc), 1)
    e2e = [d for d in full if d["MetricName"] == "E2E"]
    assert len(e2e) == 3 and all(len(d["Values"]) <= MAX_VALUES_PER_DATUM for d in e2e)
    assert sum(sum(d["Counts"]) for d in e2e) == 400
    assert len(sink.queue) == 10 and sink.dropped == len(full) - 10   # bounded: the oldest went, counted
