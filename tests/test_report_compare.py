"""`loadgen compare`: deltas against the first arm, on crafted summaries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loadgen.commands.cli import main
from loadgen.report.compare import compare, delta, fmt_delta, groups_for, headline


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


def test_an_arm_without_caching_has_no_warm_ratio_to_compare():
    """summary.json says warm_ratio 0.0 for an arm that cached nothing (no warm or cold
    call); the run table prints "-", and compare must not read "+99 pts" against it."""
    off = arm(per_1000=6.36, warm=0.0, ttft_p99=2000)
    off["cache"] = {"cold": 0, "warm": 0, "none": 100, "warm_ratio": 0.0}
    c = compare([("on-demand", off), ("cached", HOUR)])
    assert c.values["warm_ratio"]["on-demand"] is None and c.deltas["warm_ratio"]["cached"].abs is None
    assert "warm ratio" not in headline(c)[0] and "cost per 1000" in headline(c)[0]
    # a cached arm that went cold every time still has a ratio: 0 % is a figure there
    cold = arm(per_1000=9.0, warm=0.0, ttft_p99=2000)
    cold["cache"] = {"cold": 100, "warm": 0, "none": 0, "warm_ratio": 0.0}
    assert compare([("cold", cold), ("cached", HOUR)]).deltas["warm_ratio"]["cached"].pts == pytest.approx(93.0)


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
    # no shared arm name, one scenario (`run --arm geo`, `run --arm global`): as one run's arms
    s3 = {"scenario": "s", "arms": {"global": HOUR}}
    assert [[lab for lab, _ in g] for g in groups_for([("r1", {"scenario": "s", "arms": {"geo": FIVE}}),
                                                       ("r3", s3)])] == [["r1/geo", "r3/global"]]
    # ... from different scenarios: nothing corresponds, no arm is pitted against another
    assert groups_for([("r1", {"scenario": "other", "arms": {"geo": FIVE}}), ("r3", s3)]) == []


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


# ---- bad input is a clear error (exit 2), never a traceback ---------------------------


@pytest.mark.parametrize("summary,fragment", [
    ({"arms": 5}, "arms is 5; expected an object"),
    ([1, 2], "expected a JSON object"),
    ({"runs": {}}, "arms is missing"),
    ({"arms": {"a": 5}}, "arms.a is 5; expected an object of figures"),
    ({"arms": {"a": {**FIVE, "requests": {"sent": "10"}}}}, 'arms.a.requests.sent is "10"; expected an integer'),
    ({"arms": {"a": {**FIVE, "latency_ms": {"ttft": 3, "e2e": {}}}}}, "arms.a.latency_ms.ttft is 3"),
    ({"arms": {"a": {k: v for k, v in FIVE.items() if k != "cost_usd"}}}, "arms.a.cost_usd is missing"),
])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_malformed_summary_exits_2_naming_the_key(tmp_path, capsys, summary, fragment, command):
    d = _write(tmp_path / "run", summary)
    assert main([command, d, "--format", "json"] + (["--no-plots"] if command == "report" else [])) == 2
    err = capsys.readouterr().err
    assert f"loadgen {command}: " in err and "summary.json" in err and fragment in err


def _sweep(tmp_path):
    parent = tmp_path / "slow-agent-sweep-20261126T092653Z"
    parent.mkdir()
    (parent / "sweep.json").write_text("{}")
    (parent / "sweep.csv").write_text("point,arm\n")
    for name in ("01-median=1m", "02-median=5m"):
        _write(parent / name, {"arms": {"ttl-5m": FIVE, "ttl-1h": HOUR}})
    return parent


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_sweep_directory_says_how_to_report_a_point(tmp_path, capsys, command):
    parent = _sweep(tmp_path)
    assert main([command, str(parent)]) == 2
    err = capsys.readouterr().err
    assert "is a sweep directory" in err and "interrupted run" not in err
    assert f"loadgen report {parent / '01-median=1m'}" in err and f"loadgen compare {parent}/*/" in err


def test_compare_skips_files_a_glob_matched(tmp_path, capsys):
    parent = _sweep(tmp_path)
    (parent / "sweep-median.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    args = sorted(str(p) for p in parent.iterdir() if p.name != "sweep.json")   # like DIR/* without sweep.json
    assert main(["compare", *args]) == 0
    cap = capsys.readouterr()
    assert "skipping" in cap.err and "sweep-median.png: not a directory" in cap.err and "sweep.csv" in cap.err
    assert "01-median=1m/ttl-5m" in cap.out
    assert main(["compare", str(parent / "sweep.csv")]) == 2
    assert "none of the arguments is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_closed_pipe_ends_quietly(tmp_path, command):
    # `loadgen report DIR | head`: the reader goes away before loadgen writes
    facts = {"scenario": "s", "target": "emulator", "clock": "virtual", "scenario_s": 60.0, "wall_s": 1.0}
    d = _write(tmp_path / "run", {**facts, "arms": {"ttl-5m": FIVE, "ttl-1h": HOUR}})
    p = subprocess.Popen([sys.executable, "-m", "loadgen", command, d] + (["--no-plots"] if command == "report" else []),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) in (0, 1)
    assert "Traceback" not in err and "BrokenPipe" not in err
