"""`loadgen compare`: deltas against the first arm, on crafted summaries."""

from __future__ import annotations

import json

import pytest

from loadgen.cli import main
from loadgen.compare import compare, delta, fmt_delta, groups_for, headline


def arm(per_1000, warm, ttft_p99, throttled=0, sent=100, total=None):
    return {
        "requests": {"sent": sent, "ok": sent - throttled, "throttled": throttled, "error": 0, "timeout": 0,
                     "retries": throttled},
        "cache": {"cold": 10, "warm": 90, "none": 0, "warm_ratio": warm},
        "tokens": {"input": 0, "output": 100, "cache_read": 1000, "cache_write": 500},
        "cost_usd": {"total": total if total is not None else per_1000 / 10, "per_1000": per_1000,
                     "input": 0.0, "output": 0.1, "cache_read": 0.1, "cache_write": 0.2},
        "latency_ms": {"ttft": {"p50": 500, "p99": ttft_p99}, "e2e": {"p50": 900, "p99": 2000},
                       "service": {"p99": 1900}, "schedule_lag": {"p99": 10}},
        "rpm_peak": 30, "tpm_peak": 1000,
    }


FIVE = arm(per_1000=5.00, warm=0.32, ttft_p99=2000)
HOUR = arm(per_1000=3.10, warm=0.93, ttft_p99=1500)


def test_deltas_absolute_percent_and_points():
    c = compare([("ttl-5m", FIVE), ("ttl-1h", HOUR)])
    d = c.deltas["cost_per_1000"]["ttl-1h"]
    assert d.abs == pytest.approx(-1.90) and d.pct == pytest.approx(-38.0)
    w = c.deltas["warm_ratio"]["ttl-1h"]
    assert w.pts == pytest.approx(61.0) and w.pct is None  # ratios move in points, not percent
    assert c.deltas["ttft_p99"]["ttl-1h"].pct == pytest.approx(-25.0)
    assert headline(c) == ["ttl-1h vs ttl-5m: cost per 1000 -38 %, warm ratio +61 pts, ttft p99 -25 %, e2e p99 +0 %"]


def test_headline_mentions_throttles_only_when_there_are_some():
    c = compare([("a", FIVE), ("b", arm(5.0, 0.32, 2000, throttled=4))])
    assert headline(c)[0].endswith("throttled +4 pts")
    assert "throttled" not in headline(compare([("a", FIVE), ("b", HOUR)]))[0]


def test_zero_baseline_and_missing_figures():
    assert delta("usd", 1.0, 0.0).pct is None
    assert fmt_delta("usd", delta("usd", 1.0, 0.0)) == "+$1.0000"
    assert fmt_delta("ms", delta("ms", None, 10)) == "-"
    assert fmt_delta("ms", delta("ms", 1200, 1000)) == "+200ms (+20 %)"
    assert fmt_delta("ratio", delta("ratio", 0.5, 0.25)) == "+25.0 pts"


def test_every_column_is_compared_with_the_first():
    c = compare([("a", FIVE), ("b", HOUR), ("c", arm(10.0, 0.0, 4000))])
    assert c.baseline == "a"
    assert c.deltas["cost_per_1000"]["c"].pct == pytest.approx(100.0)
    assert len(headline(c)) == 2


def test_one_run_compares_its_arms_several_runs_compare_same_named_arms():
    s1 = {"arms": {"ttl-5m": FIVE, "ttl-1h": HOUR}}
    s2 = {"arms": {"ttl-5m": HOUR, "ttl-1h": FIVE}}
    assert [[lab for lab, _ in g] for g in groups_for([("r1", s1)])] == [["ttl-5m", "ttl-1h"]]
    assert [[lab for lab, _ in g] for g in groups_for([("r1", s1), ("r2", s2)])] == [
        ["r1/ttl-5m", "r2/ttl-5m"], ["r1/ttl-1h", "r2/ttl-1h"]]
    # no shared arm name: every run/arm against the first
    s3 = {"arms": {"global": HOUR}}
    assert [[lab for lab, _ in g] for g in groups_for([("r1", {"arms": {"geo": FIVE}}), ("r3", s3)])] == [
        ["r1/geo", "r3/global"]]


def _write(d, summary):
    d.mkdir()
    (d / "summary.json").write_text(json.dumps(summary))
    return str(d)


def test_compare_cli_text_and_json(tmp_path, capsys):
    a = _write(tmp_path / "run-a", {"arms": {"ttl-5m": FIVE, "ttl-1h": HOUR}})
    assert main(["compare", a]) == 0
    out = capsys.readouterr().out
    assert "ttl-1h vs ttl-5m: cost per 1000 -38 %, warm ratio +61 pts" in out
    assert "-$1.9000 (-38 %)" in out and "+61.0 pts" in out
    b = _write(tmp_path / "run-b", {"arms": {"ttl-5m": HOUR}})
    assert main(["compare", a, b, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    first = doc["comparisons"][0]
    assert first["labels"] == ["run-a/ttl-5m", "run-b/ttl-5m"]
    cost = next(m for m in first["metrics"] if m["key"] == "cost_per_1000")
    assert cost["delta"]["run-b/ttl-5m"]["pct"] == pytest.approx(-38.0)


def test_compare_a_folder_without_summary_is_bad_input(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err
