"""`loadgen validate`: a plan on stdout and exit 0 for good scenarios; every problem on
stderr, nothing on stdout and exit 2 for bad ones. Nothing is ever sent."""

from __future__ import annotations

import glob
import os
import random
import subprocess
import sys

import pytest

from loadgen import arrivals
from loadgen.cli import main
from loadgen.plan import plan
from loadgen.scenario import load

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))
BAD = os.path.join(ROOT, "tests", "bad_scenarios")


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_validate_prints_a_plan_for_every_shipped_scenario(path, capsys):
    assert main(["validate", path]) == 0
    out, err = capsys.readouterr()
    sc = load(path)
    assert out.startswith(f"scenario {sc.name}  ({path})")
    for arm in sc.arms:
        assert f"arm {arm.name}: {arm.model_id} ({arm.profile} profile)" in out
    assert "peak TPM" in out and "cost" in out and "Nothing was sent." in out
    assert err == ""


def test_validate_in_a_subprocess():
    path = os.path.join(ROOT, "scenarios", "seed-reference.toml")
    p = subprocess.run([sys.executable, "-m", "loadgen", "validate", path], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert "arm baseline:" in p.stdout and "arm cached:" in p.stdout


def test_validate_a_bad_scenario_in_a_subprocess():
    path = os.path.join(BAD, "unknown_key.toml")
    p = subprocess.run([sys.executable, "-m", "loadgen", "validate", path], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert p.returncode == 2
    assert p.stdout == ""
    assert f"{path}:7: model.max_token: unknown key; did you mean 'max_tokens'?" in p.stderr


@pytest.mark.parametrize("name,line,key", [
    ("many_problems.toml", 3, "duration"), ("many_problems.toml", 18, "arrivals.rate"),
    ("ttl_unsupported.toml", 21, "arms[0].cache_ttl"), ("toml_syntax.toml", 11, "TOML syntax error"),
    ("missing_trace.toml", 17, "arrivals.file"),
])
def test_bad_scenarios_exit_2_with_file_line_key_and_no_plan(name, line, key, capsys):
    path = os.path.join(BAD, name)
    assert main(["validate", path]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:{line}: {key}: " in err
    assert err.rstrip().endswith("nothing was sent")


def test_every_problem_goes_to_stderr(capsys):
    path = os.path.join(BAD, "many_problems.toml")
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(":")[1] for e in err[:-1]] == ["3", "7", "12", "18"]
    assert err[-1] == f"{path}: 4 problems; nothing was sent"


def test_warnings_are_printed_and_the_plan_still_runs(tmp_path, capsys):
    src = open(os.path.join(ROOT, "scenarios", "seed-reference.toml")).read()
    p = tmp_path / "small-prefix.toml"
    p.write_text(src.replace("prefix_tokens = 5024", "prefix_tokens = 3000"))
    assert main(["validate", str(p)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"warning: {p}:")
    assert "arm 'cached' asks for caching" in err and "silently ignores" in err
    assert "prefix below the cache minimum" in out


# --------------------------------------------------------------------------- the plan's numbers

def _arm(p, name):
    return next(a for a in p.arms if a.arm.name == name)


def test_reference_run_costs_match_design():
    """DESIGN.md: baseline ~ $0.0218 ($5.45 per 1000); cached ~ $0.0094 ($2.35 per 1000)."""
    p = plan(load(os.path.join(ROOT, "scenarios", "seed-reference.toml")))
    assert p.requests == 4
    base, cached = _arm(p, "baseline"), _arm(p, "cached")
    assert base.cost_cold_usd == base.cost_warm_usd == pytest.approx(0.0218, abs=0.0002)
    assert base.per_1000_cold == pytest.approx(5.45, abs=0.05)
    # first call writes 5024 tokens, the next three read them
    assert cached.expected_warm_ratio == 0.75
    assert cached.cost_expected_usd == pytest.approx(0.0094, abs=0.0002)
    assert cached.per_1000_expected == pytest.approx(2.35, abs=0.05)
    assert cached.cost_warm_usd < cached.cost_expected_usd < cached.cost_cold_usd


def test_open_loop_plan_counts_what_the_runner_will_send():
    sc = load(os.path.join(ROOT, "scenarios", "steady-chat.toml"))
    sent = list(arrivals.offsets(sc.arrivals, sc.duration, random.Random(f"{sc.seed}:arrivals")))
    p = plan(sc)
    assert p.requests == len(sent) and all(a.requests == len(sent) for a in p.arms)
    assert p.peak_rpm >= len(sent) / (sc.duration / 60)   # the busiest minute is at least the mean


def test_global_profile_plans_cheaper_than_geo():
    p = plan(load(os.path.join(ROOT, "scenarios", "steady-chat.toml")))
    assert _arm(p, "global").cost_cold_usd < _arm(p, "geo").cost_cold_usd
    assert _arm(p, "geo").cost_cold_usd == pytest.approx(_arm(p, "region").cost_cold_usd)


def test_slow_agent_longer_ttl_reads_more_of_the_cache():
    p = plan(load(os.path.join(ROOT, "scenarios", "slow-agent.toml")))
    five, hour = _arm(p, "ttl-5m"), _arm(p, "ttl-1h")
    assert p.sessions and p.requests >= p.sessions * 1  # sessions cut by the end may send fewer turns
    assert hour.expected_read_share > five.expected_read_share
    # the headline answer at these gaps: 5-minute entries expire between turns, 1-hour ones do not
    # (a run on the emulator measured 70.4 % vs 99.5 % warm, $5.11 vs $4.25 per 1000)
    assert five.expected_warm_ratio == pytest.approx(0.71, abs=0.03)
    assert hour.expected_warm_ratio > 0.99
    assert hour.cost_expected_usd < five.cost_expected_usd
    # all-cold costs more at 1h (2x writes vs 1.25x); all-warm is the same reads plus pricier writes
    assert hour.cost_cold_usd > five.cost_cold_usd


def test_peak_tpm_for_a_constant_rate(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("""
name = "c"
duration = "3m"
[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 100
[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 20
output_tokens = 50
[arrivals]
kind = "constant"
rate = "1/s"
[[arms]]
name = "off"
cache = false
""")
    (a,) = plan(load(str(p))).arms
    assert (a.requests, a.peak_rpm) == (180, 60)
    assert a.peak_tpm_reserved == 60 * (5020 + 100)          # input + max_tokens, 60 per minute
    assert a.peak_tpm_charged_cold == 60 * (5020 + 50 * 5)   # output x burndown 5 for Claude 4.5


def test_outputs_are_cut_at_max_tokens(tmp_path):
    src = open(os.path.join(ROOT, "scenarios", "seed-reference.toml")).read()
    p = tmp_path / "cut.toml"
    p.write_text(src.replace("output_tokens = 80", "output_tokens = 5000"))
    base = _arm(plan(load(str(p))), "baseline")
    assert base.output_tokens == 4 * 300   # max_tokens = 300 in that scenario
