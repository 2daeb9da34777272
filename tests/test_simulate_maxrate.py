"""`loadgen simulate --find-max-rate`: the highest rate within the thresholds, and why not more."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from loadgen.api.maxrate import Trial, search, throttle_cause
from result_files import only_dir

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"

# No cache (prefix below the model's minimum), constant sizes: every request is charged
# 1000 + 12 input + 50 output x 5 burndown = 1262 tokens once it ends (1112 reserved
# at the start), so 60,000 TPM hold about 60000 / 60 / 1262 = 0.79 requests/s.
SCENARIO = f"""
name = "capacity"
seed = 2
duration = "3m"

[model]
id = "{HAIKU}"
max_tokens = 100
stream = false

[workload]
kind = "single"
prefix_tokens = 1000
question_tokens = 12
output_tokens = 50

[arrivals]
kind = "constant"
rate = "1/s"

[emulator]
latency = "fast"

[emulator.quotas]
{{quota}}

[[arms]]
name = "in-region"
profile = "region"
cache = false
"""


def write(tmp_path: Path, quota: str, extra: str = "") -> Path:
    p = tmp_path / "capacity.toml"
    p.write_text(textwrap.dedent(SCENARIO.format(quota=quota)) + extra)
    return p


def test_tpm_quota_bounds_the_rate_and_is_named(tmp_path, capsys):
    sc = write(tmp_path, "tpm = 60000")
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "throttle_rate < 1% (default" in out
    parent = only_dir(tmp_path / "out")
    doc = json.loads((parent / "maxrate.json").read_text())
    arm = doc["arms"]["in-region"]
    assert 0.6 <= arm["max_rate_per_s"] <= 0.8
    assert arm["max_rate_per_s"] < arm["first_failing_rate_per_s"] <= arm["max_rate_per_s"] * 1.06
    assert f"TPM quota of {HAIKU} in us-east-1" in arm["binding"]
    assert "throttle_rate < 1%" in arm["binding"]
    assert arm["at_max"]["throttle_pct"] < 1.0
    assert doc["default_thresholds"] is True
    # an ordinary results directory at the rate found
    summary = json.loads((parent / "in-region" / "summary.json").read_text())
    assert summary["clock"] == "virtual"
    assert "TPM quota" in out and "in-region: max" in out


def test_rpm_quota_and_scenario_thresholds(tmp_path):
    sc = write(tmp_path, "tpm = 0\nrpm = 30", extra='\n[thresholds]\nall = ["throttle_rate < 2%"]\n')
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    doc = json.loads((only_dir(tmp_path / "out") / "maxrate.json").read_text())
    arm = doc["arms"]["in-region"]
    assert doc["thresholds"] == ["throttle_rate < 2%"] and doc["default_thresholds"] is False
    assert 0.4 <= arm["max_rate_per_s"] <= 0.52
    assert "RPM quota" in arm["binding"]


def test_closed_loop_scenario_is_bad_input(tmp_path, capsys):
    root = Path(__file__).resolve().parent.parent
    assert main(["simulate", str(root / "scenarios" / "slow-agent.toml"), "--find-max-rate",
                 "--out", str(tmp_path / "out")]) == 2
    assert "open-loop" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("start", [0.01, 7.0, 400.0])
def test_search_brackets_and_bisects_a_threshold(start):
    limit = 7.3
    seen: list[float] = []

    def probe(rate: float) -> Trial:
        seen.append(rate)
        return Trial(rate, rate <= limit, 0, (), ())

    good, bad, trials = search(probe, start, tolerance=0.02)
    assert good is not None and bad is not None
    assert good.rate <= limit < bad.rate <= good.rate * 1.02
    assert len(trials) == len(seen) <= 24


def test_search_reports_when_nothing_passes_or_nothing_fails():
    good, bad, _ = search(lambda r: Trial(r, False, 0, (), ()), 1.0, lowest=0.25)
    assert good is None and bad is not None and bad.rate == 0.25
    good, bad, _ = search(lambda r: Trial(r, True, 0, (), ()), 1.0, highest=16)
    assert bad is None and good is not None and good.rate == 16


def test_throttle_causes_come_from_the_quota_field_not_the_message():
    assert throttle_cause("tpm us-east-1", "Too many tokens, please wait.", "m") == "TPM quota of m in us-east-1"
    assert throttle_cause("rpm eu-west-1", "any words at all", "m") == "RPM quota of m in eu-west-1"
    assert throttle_cause("tpd us-east-1", "Too many tokens per day, please wait before trying again.", "m") \
        == "TPD quota of m in us-east-1"
    assert throttle_cause("capacity us-east-1,us-east-2,us-west-2", None, "m") == \
        "Region capacity (us-east-1, us-east-2, us-west-2)"
    # AWS sends no quota header: the message is all there is, shown as it came
    assert throttle_cause(None, "Too many tokens, please wait before trying again.", "m") == \
        "throttling (Too many tokens, please wait before trying again.)"
    assert throttle_cause(None, None, "m") == "throttling (no message)"


def test_binding_limit_does_not_depend_on_the_throttle_message_wording(tmp_path, monkeypatch):
    # reword every emulator throttle: the binding limit is still named from the structured cause
    from loadgen.emulator import quotas, routing

    real_error = quotas.error

    def reworded(code, message, **kw):
        return real_error(code, "Rate exceeded." if code == "ThrottlingException" else message, **kw)

    for throttler in (quotas, routing):
        monkeypatch.setattr(throttler, "error", reworded)
    sc = write(tmp_path, "tpm = 60000")
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    arm = json.loads((only_dir(tmp_path / "out") / "maxrate.json").read_text())["arms"]["in-region"]
    assert f"TPM quota of {HAIKU} in us-east-1" in arm["binding"], arm["binding"]


def test_tpm_threshold_is_the_peak_quota_tokens_with_burndown(tmp_path):
    # no quota at all; the scenario's own `tpm` gate binds: 1262 quota tokens per request,
    # so tpm < 30000 holds up to 30000 / 1262 = 23.8 requests per minute = 0.396/s
    sc = write(tmp_path, "tpm = 0", extra='\n[thresholds]\nall = ["tpm < 30000"]\n')
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    arm = json.loads((only_dir(tmp_path / "out") / "maxrate.json").read_text())["arms"]["in-region"]
    assert 0.33 <= arm["max_rate_per_s"] <= 0.4
    assert "tpm < 30000" in arm["binding"]


def test_results_at_the_max_rate_hold_the_scenario_they_ran(tmp_path):
    from loadgen.scenario import loads

    sc = write(tmp_path, "tpm = 60000")
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    parent = only_dir(tmp_path / "out")
    rate = json.loads((parent / "maxrate.json").read_text())["arms"]["in-region"]["max_rate_per_s"]
    ran = loads((parent / "in-region" / "scenario.toml").read_text())
    assert ran.arrivals.rate == pytest.approx(rate)
    assert [a.name for a in ran.arms] == ["in-region"]


def test_no_rate_within_the_thresholds_exits_1_with_every_trials_verdicts(tmp_path, capsys):
    # the arm runs without a cache: warm 0 % at any rate, so the search halves down to its lowest rate
    sc = write(tmp_path, "tpm = 60000", extra='\n[thresholds]\nall = ["warm_ratio > 50%"]\n')
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "no rate passes for in-region" in capsys.readouterr().err
    doc = json.loads((only_dir(tmp_path / "out") / "maxrate.json").read_text())
    assert doc["exit_code"] == 1
    arm = doc["arms"]["in-region"]
    assert arm["max_rate_per_s"] is None and len(arm["trials"]) > 1
    for t in arm["trials"]:
        [v] = t["thresholds"]
        assert v["expr"] == "warm_ratio > 50%" and v["status"] == "FAIL" and v["limit"] == 0.5
    assert [t["thresholds"][0]["measured"] for t in arm["trials"] if t["sent"]][:1] == [0.0]


def test_a_found_rate_exits_0_and_its_trials_carry_their_verdicts(tmp_path):
    sc = write(tmp_path, "tpm = 60000")
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    doc = json.loads((only_dir(tmp_path / "out") / "maxrate.json").read_text())
    assert doc["exit_code"] == 0
    arm = doc["arms"]["in-region"]
    [at_max] = arm["at_max"]["thresholds"]
    assert at_max["expr"] == "throttle_rate < 1%" and at_max["status"] == "PASS" and at_max["measured"] < 0.01
    [at_fail] = arm["at_first_fail"]["thresholds"]
    assert at_fail["status"] == "FAIL" and at_fail["measured"] >= 0.01


def test_a_percentile_summary_json_does_not_carry_is_measured(tmp_path):
    # p95 is not in summary.json; each trial reads it from its own histograms. Before, the
    # lookup failed, every trial FAILed and no rate passed; 60 s end to end holds at any rate,
    # so the TPM quota binds as with the default thresholds.
    sc = write(tmp_path, "tpm = 60000", extra='\n[thresholds]\nall = ["p95(e2e) < 60s", "throttle_rate < 1%"]\n')
    assert main(["simulate", str(sc), "--find-max-rate", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    arm = json.loads((only_dir(tmp_path / "out") / "maxrate.json").read_text())["arms"]["in-region"]
    assert 0.6 <= arm["max_rate_per_s"] <= 0.8
    p95 = next(v for v in arm["at_max"]["thresholds"] if v["expr"] == "p95(e2e) < 60s")
    assert p95["status"] == "PASS" and p95["measured"] is not None and p95["measured"] < 60_000


@pytest.mark.slow
def test_ctrl_c_writes_the_trials_done_and_exits_130(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    sc = write(tmp_path, "tpm = 60000")
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "simulate", str(sc), "--find-max-rate", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()  # the header; wait for the first trial's line, then interrupt
    while "in-region:" not in line and p.poll() is None:
        line = p.stdout.readline()
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: partial search written" in stderr
    doc = json.loads((only_dir(out) / "maxrate.json").read_text())
    assert doc["interrupted"] is True and doc["complete"] is False and doc["exit_code"] == 130
    arm = doc["arms"]["in-region"]
    assert arm["interrupted"] is True and len(arm["trials"]) >= 1
    assert all(t["thresholds"] for t in arm["trials"])
