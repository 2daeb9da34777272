"""Failures never vanish from latency: a simulated run where about 20 % of attempts time
out, read the ways a user reads it (the run's table and thresholds, `report` on the
finished and on a killed copy, `compare`)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from loadgen.results.directory import load_summary, read_histogram

# Slow streams (20 %, 100x slower) cannot finish within the 10 s request timeout.
SCENARIO = """
name = "timeouts"
seed = 5
duration = "10m"

[target]
region = "us-east-1"
request_timeout = "10s"

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 200
stream = true

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 10
output_tokens = 100

[arrivals]
kind = "constant"
rate = "30/m"

[[arms]]
name = "a"
cache_ttl = "5m"
profile = "region"

[[arms]]
name = "b"
cache_ttl = "1h"
profile = "region"

[thresholds]
all = ["p99(e2e) < 5s"]

[emulator.faults]
slow_stream_rate = 0.2
slow_stream_factor = 100
"""


def _run(tmp: Path, text: str = SCENARIO, name: str = "to.toml") -> tuple[int, str, Path]:
    sc = tmp / name
    sc.write_text(text)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["simulate", str(sc), "--out", str(tmp / "out"), "--quiet"])
    (d,) = [p for p in (tmp / "out").iterdir() if p.name.startswith(text.split('"')[1])]
    return rc, buf.getvalue(), d


@pytest.fixture(scope="module")
def timed_out(tmp_path_factory) -> tuple[int, str, Path]:
    return _run(tmp_path_factory.mktemp("failures"))


def _killed_copy(run_dir: Path, tmp_path: Path) -> Path:
    """What a SIGKILL leaves: everything written before the end of the run."""
    d = tmp_path / run_dir.name
    d.mkdir()
    for name in ("scenario.toml", "run.json", "requests.jsonl"):
        shutil.copy(run_dir / name, d)
    return d


def test_the_run_fails_a_latency_gate_that_ok_only_figures_would_pass(timed_out):
    rc, out, d = timed_out
    s = load_summary(d)
    for name, arm in s["arms"].items():
        req, lat = arm["requests"], arm["latency_ms"]
        assert 0.1 < req["timeout"] / req["sent"] < 0.3, req               # about 20 % timed out
        assert lat["e2e"]["p99"] < 5000 and lat["e2e"]["failed"] == req["timeout"]   # ok-only: fine
        assert lat["e2e_all"]["count"] == req["sent"]                       # every attempt is in
        assert lat["e2e_all"]["p99"] == pytest.approx(10_000, rel=2e-3)    # timeouts at the deadline
    assert rc == 1
    lines = out.splitlines()
    verdict = next(ln for ln in lines if ln.startswith("a  p99(e2e) < 5s"))
    assert "FAIL  measured 10.00 s (limit < 5.00 s)" in verdict, out
    assert "attempts failed, each counted at the time it failed" in verdict
    # the headline table: latency over every attempt, the failures counted beside it
    row = next(ln for ln in lines if ln.startswith("a "))
    assert row.split()[-3] == "10.00s"                                      # e2e p99
    assert any(ln.startswith(f"a: {s['arms']['a']['requests']['timeout']} of {s['arms']['a']['requests']['sent']} "
                             "attempts failed") for ln in lines), out
    assert (d / "histograms" / "a.e2e_all.hlog").exists() and (d / "histograms" / "b.ttft_all.hlog").exists()
    html = (d / "report.html").read_text(encoding="utf-8")
    assert "attempts failed" in html


def test_a_killed_copy_rebuilds_exactly_the_figures_the_run_wrote(timed_out, tmp_path, capsys):
    _, _, d = timed_out
    k = _killed_copy(d, tmp_path)
    # the ok-only gate by name: it passes, and says what it leaves out
    (k / "scenario.toml").write_text(SCENARIO.replace('all = ["p99(e2e) < 5s"]',
                                                      'all = ["p99(e2e) < 5s", "p99(e2e_ok) < 5s"]'))
    assert main(["report", str(k), "--format", "json", "--no-plots"]) == 1
    doc = json.loads(capsys.readouterr().out)
    got, want = doc["summary"], load_summary(d)
    for name, w in want["arms"].items():
        g = got["arms"][name]
        for key in ("requests", "errors", "cache", "tokens", "latency_ms", "latency_clamped", "rpm_peak",
                    "tpm_peak", "gap_buckets"):
            assert g[key] == w[key], (name, key)       # exact: times rounded to 1 us on both paths
        assert g["cost_usd"]["total"] == w["cost_usd"]["total"]
    # the clock the run picked, from run.json (written before the first request): this
    # was `simulate`, whose scenario.toml alone would suggest a warp clock
    assert (got["clock"], got["time_scale"], got["clock_source"]) == ("virtual", want["time_scale"], "run.json")
    assert [t["status"] for t in doc["thresholds"]] == ["FAIL", "PASS", "FAIL", "PASS"]
    assert "failed attempt(s) left out" in doc["thresholds"][1]["note"]


def test_the_saved_histograms_give_the_summary_figures(timed_out):
    _, _, d = timed_out
    s = load_summary(d)
    for metric in ("e2e_all", "ttft_all", "e2e"):
        h = read_histogram(d / "histograms" / f"a.{metric}.hlog")
        assert h.get_total_count() == s["arms"]["a"]["latency_ms"][metric]["count"]
        assert h.get_value_at_percentile(99) / 1000 == s["arms"]["a"]["latency_ms"][metric]["p99"]


def test_compare_reads_a_killed_run_the_way_report_does(timed_out, tmp_path, capsys):
    _, _, d = timed_out
    k = _killed_copy(d, tmp_path)
    assert main(["compare", str(d), str(k), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["rebuilt"] for r in doc["runs"]] == [False, True]
    finished, killed = (r["label"] for r in doc["runs"])     # same folder name: the second is "...#2"
    assert any(n.startswith(f"REBUILT {killed}: ") for n in doc["notes"])
    first = doc["comparisons"][0]
    e2e = next(m for m in first["metrics"] if m["key"] == "e2e_all_p99")
    assert e2e["delta"][f"{killed}/a"]["abs"] == 0                             # the same attempts, the same figure
    failed = next(m for m in first["metrics"] if m["key"] == "failed")
    assert failed["values"][f"{finished}/a"] == load_summary(d)["arms"]["a"]["requests"]["timeout"]
    assert main(["compare", str(k)]) == 0
    assert "REBUILT" in capsys.readouterr().out


def test_compare_refuses_unrelated_scenarios_and_says_when_arms_are_paired_across_two(timed_out, tmp_path,
                                                                                         capsys):
    _, _, d = timed_out
    other = SCENARIO.replace('name = "timeouts"', 'name = "other"').replace('name = "a"', 'name = "x"') \
        .replace('name = "b"', 'name = "y"')
    _, _, o = _run(tmp_path, other, "other.toml")
    assert main(["compare", str(d), str(o)]) == 2
    err = capsys.readouterr().err
    assert "different scenarios and share no arm name" in err and "timeouts" in err and "other" in err
    # same arm names, different scenarios: paired by name, and said so before any figure
    renamed = SCENARIO.replace('name = "timeouts"', 'name = "renamed"')
    _, _, r = _run(tmp_path, renamed, "renamed.toml")
    assert main(["compare", str(d), str(r)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: these results come from 2 different scenarios (timeouts: ")
    assert f"{r.name}/a vs {d.name}/a" in out
