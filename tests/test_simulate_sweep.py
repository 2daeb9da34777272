"""`loadgen simulate --sweep`: points, outputs, the TTL crossover, and bad sweeps."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgen.scenario import sweep
from loadgen._toml import toml
from loadgen.commands.cli import main
from loadgen.scenario import loads
from result_files import only_dir

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CROSSOVER = HERE.parent / "scenarios" / "ttl-crossover.toml"


def test_ttl_crossover_sweep_finds_both_crossovers(tmp_path, capsys):
    flag = "sessions.think_time.median=1m,4m,6m,20m,45m,70m"
    assert main(["simulate", str(CROSSOVER), "--sweep", flag, "--out", str(tmp_path), "--quiet"]) == 0
    parent = only_dir(tmp_path)
    assert parent.name.startswith("ttl-crossover-sweep-")
    doc = json.loads((parent / "sweep.json").read_text())
    rows = doc["rows"]
    assert len(rows) == 6 * 2
    cost = {(r["sessions.think_time.median"], r["arm"]): r["cost_per_1000"] for r in rows}
    warm = {(r["sessions.think_time.median"], r["arm"]): r["warm_ratio"] for r in rows}
    for gap in ("1m", "4m"):    # both warm; the 5m TTL's cheaper writes win
        assert warm[gap, "ttl-5m"] > 0.9 and warm[gap, "ttl-1h"] > 0.9
        assert cost[gap, "ttl-5m"] < cost[gap, "ttl-1h"]
    for gap in ("6m", "20m", "45m"):  # only the 1h cache survives the gap
        assert warm[gap, "ttl-5m"] == 0 and warm[gap, "ttl-1h"] > 0.9
        assert cost[gap, "ttl-1h"] < cost[gap, "ttl-5m"]
    assert warm["70m", "ttl-5m"] == warm["70m", "ttl-1h"] == 0  # both cold; 1h writes cost more
    assert cost["70m", "ttl-1h"] > cost["70m", "ttl-5m"]

    found = doc["crossovers"]
    assert [(c["between"], c["cheaper_below"], c["cheaper_above"]) for c in found] == [
        (["4m", "6m"], "ttl-5m", "ttl-1h"), (["45m", "70m"], "ttl-1h", "ttl-5m")]
    # the estimate is a straight line between two measured points, and says so (the
    # 5m TTL's step lies anywhere between 4m and 6m: a finer sweep finds it at ~4m31s)
    assert [(c["estimate"], c["estimate_method"]) for c in found] == [
        ("4m9s", "linear interpolation between the two measured points"),
        ("59m", "linear interpolation between the two measured points")]
    out = capsys.readouterr().out
    assert "crossovers" in out and "between 45m and 70m (~59m by linear interpolation)" in out
    assert "median: between 4m and 6m (~4m9s by linear interpolation) ttl-1h becomes cheaper than ttl-5m" in out
    assert "above ~" not in out

    with open(parent / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 12
    assert {"sessions.think_time.median", "arm", "cost_per_1000", "warm_ratio", "throttle_pct",
            "ttft_p50_ms", "ttft_p99_ms"} <= set(table[0])
    # one ordinary results directory per point, holding the exact scenario it ran
    points = sorted(d for d in parent.iterdir() if d.is_dir())
    assert [p.name for p in points][:2] == ["00-median=1m", "01-median=4m"]
    ran = loads((points[3] / "scenario.toml").read_text(), str(points[3] / "scenario.toml"))
    assert ran.sessions.think_time.median == 20 * 60
    assert ran.sessions.think_time.p90 == pytest.approx(22 * 60)  # shape kept: p90/median = 1.1
    assert json.loads((points[3] / "summary.json").read_text())["clock"] == "virtual"


def test_cross_product_of_two_sweeps(tmp_path):
    flags = ["--sweep", "sessions.think_time.median=2m,10m", "--sweep", "arms.cache_ttl=5m,1h"]
    assert main(["simulate", str(CROSSOVER), *flags, "--out", str(tmp_path), "--quiet"]) == 0
    doc = json.loads((only_dir(tmp_path) / "sweep.json").read_text())
    assert [a["key"] for a in doc["axes"]] == ["sessions.think_time.median", "arms.cache_ttl"]
    assert len(doc["rows"]) == 4 * 2
    # arms.cache_ttl applies to every arm: both arms of a point priced alike
    by = {}
    for r in doc["rows"]:
        by.setdefault((r["sessions.think_time.median"], r["arms.cache_ttl"]), []).append(r["cost_per_1000"])
    for costs in by.values():
        assert costs[0] == pytest.approx(costs[1])
    assert by["10m", "1h"][0] < by["10m", "5m"][0]


@pytest.mark.parametrize("flag,message", [
    ("sessions.think_tme.median=1m,2m", "think_tme"),
    ("sessions.think_time.median=1m,soon", "soon"),
    ("seed.value=1,2", "seed is a value"),
    ("sessions.think_time.median", "expected KEY=V1,V2"),
    ("sessions.think_time.median=1m,,2m", "without empty ones"),
    ("emulator.quotas.tpm=-5", "emulator.quotas.tpm"),
])
def test_bad_sweep_exits_2_before_anything_runs(tmp_path, capsys, flag, message):
    assert main(["simulate", str(CROSSOVER), "--sweep", flag, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "--sweep" in err
    assert not (tmp_path / "out").exists()


def test_sweep_and_find_max_rate_do_not_combine(tmp_path, capsys):
    assert main(["simulate", str(CROSSOVER), "--sweep", "seed=1,2", "--find-max-rate",
                 "--out", str(tmp_path)]) == 2
    assert "do not combine" in capsys.readouterr().err


# ---- the pure parts ------------------------------------------------------------

def test_keys_address_arms_by_broadcast_or_by_name_and_quoted_parts():
    raw = toml.loads(CROSSOVER.read_text())
    axes = sweep.parse_axes(["arms.ttl-5m.profile=global", 'emulator.quotas.models."us.x:0".tpm=7'])
    doc = sweep.apply(raw, axes, sweep.points(axes)[0])
    assert [a["profile"] for a in doc["arms"]] == ["global", "geo"]
    assert doc["emulator"]["quotas"]["models"]["us.x:0"]["tpm"] == 7
    assert "emulator" not in raw  # the original is untouched
    axes = sweep.parse_axes(["arms.cache_ttl=1h"])
    doc = sweep.apply(raw, axes, sweep.points(axes)[0])
    assert [a["cache_ttl"] for a in doc["arms"]] == ["1h", "1h"]


def test_values_take_the_type_the_key_has():
    assert sweep.value_for("400000", 2000000) == 400000
    assert sweep.value_for("1.5", None) == 1.5
    assert sweep.value_for("true", None) is True
    assert sweep.value_for("5m", "3m") == "5m"
    assert sweep.value_for("7", "old-name") == "7"  # a string key stays a string
    assert sweep.value_for('{dist = "constant", value = "5m"}', None) == {"dist": "constant", "value": "5m"}


@pytest.mark.parametrize("name", ["slow-agent", "steady-chat", "ramp-to-quota", "seed-reference"])
def test_dumped_toml_parses_to_the_same_scenario(name):
    path = ROOT / "scenarios" / f"{name}.toml"
    text = path.read_text()
    a = loads(text, str(path))
    b = loads(sweep.dumps(toml.loads(text), header="x"), str(path))
    skip = {"source", "warnings", "thresholds"}  # thresholds carry their line numbers
    assert {k: v for k, v in vars(a).items() if k not in skip} == {k: v for k, v in vars(b).items() if k not in skip}
    assert [(t.expr, t.arm) for t in a.thresholds] == [(t.expr, t.arm) for t in b.thresholds]


def test_crossovers_on_synthetic_rows():
    axes = sweep.parse_axes(["gap=1m,5m,10m,90m"])
    costs = {"a": [1.0, 2.0, 4.0, 4.0], "b": [1.5, 1.5, 1.5, 6.0]}
    rows = [{"gap": v, "arm": arm, "cost_per_1000": c[i]} for arm, c in costs.items()
            for i, v in enumerate(axes[0].values)]
    found = sweep.crossovers(rows, axes)
    assert [(c.between, c.cheaper_below, c.cheaper_above) for c in found] == [
        (("1m", "5m"), "a", "b"), (("10m", "90m"), "b", "a")]
    assert found[0].estimate == "3m"  # a-b: -0.5 at 1m, +0.5 at 5m
    assert found[0].text() == ("gap: between 1m and 5m (~3m by linear interpolation) b becomes cheaper than a "
                               "per 1000 requests")
    assert found[0].to_dict()["estimate_method"] == "linear interpolation between the two measured points"


# ---- thresholds per point --------------------------------------------------------

def with_thresholds(tmp_path: Path, lines: str) -> Path:
    p = tmp_path / "ttl-crossover.toml"
    p.write_text(CROSSOVER.read_text() + "\n[thresholds]\n" + lines + "\n")
    return p


def test_a_point_failing_a_threshold_fails_the_sweep(tmp_path, capsys):
    # at a 20-minute gap the 5-minute cache is always cold: warm 0 % < 50 %
    sc = with_thresholds(tmp_path, 'all = ["warm_ratio > 50%"]')
    out = tmp_path / "out"
    code = main(["simulate", str(sc), "--sweep", "sessions.think_time.median=1m,20m", "--out", str(out), "--quiet"])
    assert code == 1
    parent = only_dir(out)
    doc = json.loads((parent / "sweep.json").read_text())
    assert doc["thresholds_passed"] is False and doc["exit_code"] == 1
    verdict = {(r["sessions.think_time.median"], r["arm"]): r["thresholds"] for r in doc["rows"]}
    assert verdict == {("1m", "ttl-5m"): "pass", ("1m", "ttl-1h"): "pass",
                       ("20m", "ttl-5m"): "FAIL", ("20m", "ttl-1h"): "pass"}
    failing = [r for r in doc["rows"] if r["thresholds"] == "FAIL"][0]
    assert failing["failed_thresholds"] == "warm_ratio > 50% (measured 0.00 %)"
    # every verdict, per point: expression, observed value, limit, status
    by_point = {p["point"]: p for p in doc["points"]}
    assert by_point[0]["thresholds_passed"] is True
    [bad] = [v for v in by_point[1]["thresholds"] if v["status"] == "FAIL"]
    assert bad["arm"] == "ttl-5m" and bad["expr"] == "warm_ratio > 50%"
    assert bad["measured"] == 0 and bad["limit"] == 0.5
    # the CSV carries the verdict column too
    with open(parent / "sweep.csv", newline="") as f:
        assert [r["thresholds"] for r in csv.DictReader(f)] == ["pass", "pass", "FAIL", "pass"]
    # the printed table shows which point failed, and why
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("20m") and "ttl-5m" in x)
    assert "FAIL" in line
    assert "warm_ratio > 50%" in printed and "1 of 2 points failed a threshold" in printed


def test_a_sweep_whose_points_all_pass_exits_0_and_says_so(tmp_path, capsys):
    sc = with_thresholds(tmp_path, 'arms = { "ttl-1h" = ["warm_ratio > 50%"] }')
    out = tmp_path / "out"
    assert main(["simulate", str(sc), "--sweep", "sessions.think_time.median=1m,20m", "--out", str(out),
                 "--quiet"]) == 0
    doc = json.loads((only_dir(out) / "sweep.json").read_text())
    assert doc["thresholds_passed"] is True and doc["exit_code"] == 0
    # a threshold for one arm gives the other arm no verdict
    assert {(r["arm"], r["thresholds"]) for r in doc["rows"]} == {("ttl-1h", "pass"), ("ttl-5m", "-")}
    # --quiet: no per-point table or results line, only the sweep's own table
    printed = capsys.readouterr().out
    assert printed.count("results:") == 1 and "report:" not in printed


# ---- Ctrl-C ------------------------------------------------------------------------

def _interrupt_after_first_point(cmd: list[str], out: Path, marker: str) -> subprocess.CompletedProcess:
    """Start `loadgen ...` in a process, send SIGINT once `marker` (a glob under out) exists."""
    p = subprocess.Popen([sys.executable, "-m", "loadgen", *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob(marker)) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    return subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)


@pytest.mark.slow
def test_ctrl_c_writes_the_points_done_and_exits_130(tmp_path):
    out = tmp_path / "out"
    flag = "sessions.think_time.median=1m,4m,6m,20m,45m,70m"
    r = _interrupt_after_first_point(["simulate", str(CROSSOVER), "--sweep", flag, "--out", str(out)], out,
                                     "*/00-*/summary.json")
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and "interrupted: partial sweep written" in r.stderr
    doc = json.loads((only_dir(out) / "sweep.json").read_text())
    assert doc["interrupted"] is True and doc["complete"] is False and doc["exit_code"] == 130
    assert 1 <= doc["points_done"] < doc["points_total"] == 6
    done = {p["point"] for p in doc["points"]}
    assert len(done) == doc["points_done"] and {r["point"] for r in doc["rows"]} <= done
    assert all(r["sent"] == 12 for r in doc["rows"] if r["stopped"] == "completed")
