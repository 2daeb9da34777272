"""`loadgen validate`: a plan on stdout and exit 0 for good scenarios; every problem on
stderr, nothing on stdout and exit 2 for bad ones. Nothing is ever sent."""

from __future__ import annotations

import glob
import os
import random
import subprocess
import sys

import pytest

from loadgen.commands.cli import main
from loadgen.api.plan import plan
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
    sent = list(sc.arrivals.offsets(sc.duration, random.Random(f"{sc.seed}:arrivals")))
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


# --------------------------------------------------------------------------- bad input through the CLI
#
# Each case: exit 2, one message naming the file (and line and key where there is one),
# nothing on stdout, no traceback, no results directory.

STEADY = open(os.path.join(ROOT, "scenarios", "steady-chat.toml")).read()


def _variant(tmp_path, old: str, new: str, name: str = "s.toml") -> str:
    assert old in STEADY
    p = tmp_path / name
    p.write_text(STEADY.replace(old, new, 1))
    return str(p)


def _refused(argv, capsys) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return err


@pytest.mark.parametrize("data, fragment", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ":1: a binary file (it holds NUL bytes)"),
    (STEADY.encode("utf-16"), ":1: not a UTF-8 text file: it starts with a UTF-16 byte-order mark"),
    (STEADY.replace("Open-loop", "Caf\xe9").encode("latin-1"), ":7: not UTF-8 text (byte 0xe9)"),
])
def test_files_that_are_not_utf8_text_are_refused_with_their_line(tmp_path, capsys, data, fragment):
    p = tmp_path / "s.toml"
    p.write_bytes(data)
    err = _refused(["validate", str(p)], capsys)
    assert err.startswith(f"{p}{fragment}")


@pytest.mark.parametrize("text", [
    "x = " + "{a=" * 5000 + "1" + "}" * 5000,     # inline tables: RecursionError in tomllib
    "x = " + "[" * 5000 + "]" * 5000,             # arrays: the same
    "[" + ".".join(["a"] * 5000) + "]",             # a header 5000 tables deep: parses, too deep to walk
    "\n\nx = " + "[" * 40 + "]" * 40,             # deep enough to refuse, shallow enough to parse
])
def test_nesting_bombs_are_refused_not_a_recursion_error(tmp_path, capsys, text):
    p = tmp_path / "s.toml"
    p.write_text(text + "\n")
    err = _refused(["validate", str(p)], capsys)
    line = 3 if text.startswith("\n") else 1
    assert err.startswith(f"{p}:{line}: tables and arrays nested more than 16 deep")


def test_a_closed_stdout_ends_output_quietly():
    # the reader goes away before loadgen writes its plan: `loadgen validate f | true`
    path = os.path.join(ROOT, "scenarios", "slow-agent.toml")
    p = subprocess.Popen([sys.executable, "-m", "loadgen", "validate", path], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=ROOT)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


def test_a_closed_stdout_in_process_keeps_the_exit_code(monkeypatch):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["validate", os.path.join(ROOT, "scenarios", "steady-chat.toml")]) == 0


@pytest.mark.parametrize("old, new, key", [
    ('rate = "5/s"', 'rate = "1000000000000/s"', "about 120,000,000,000,000 requests per arm"),
    ('duration = "2m"', 'duration = "876000h"', "about 15,768,000,000 requests per arm"),
    ('rate = "5/s"', 'rate = "' + "9" * 400 + '/s"', "arrivals.rate: "),   # overflows a float
    # a spread over billions of bursts: counting them one by one took hours
    ('duration = "2m"', 'duration = "1000h"', None),
])
def test_absurd_plans_are_refused_at_once(tmp_path, capsys, old, new, key):
    import time

    path = _variant(tmp_path, old, new)
    if key is None:
        text = open(path).read().replace('kind = "poisson"\nrate = "5/s"',
                                         'kind = "bursts"\nevery = "1ms"\nsize = 1\nspread = "999h"')
        open(path, "w").write(text)
        key = "about 1,801,800,000 requests per arm"
    t0 = time.process_time()   # CPU, not wall: drawing is work; a stalled process is not
    err = _refused(["validate", path], capsys)
    assert time.process_time() - t0 < 2.0   # counted from the process, not drawn
    assert key in err and err.startswith(path + ":")
    if "requests per arm" in key:
        assert err.startswith(f"{path}:6: duration: ") and "--allow-huge" in err


def test_absurd_plans_are_refused_by_run_and_simulate_before_anything_is_written(tmp_path, capsys):
    path = _variant(tmp_path, 'duration = "2m"', 'duration = "876000h"')
    out = tmp_path / "results"
    for cmd in ("run", "simulate"):
        err = _refused([cmd, path, "--out", str(out)], capsys)
        assert f"{path}:6: duration: about 15,768,000,000 requests per arm" in err
    # the flag override is counted too
    err = _refused(["simulate", os.path.join(ROOT, "scenarios", "steady-chat.toml"), "--duration", "876000h",
                    "--out", str(out)], capsys)
    assert "is above the limit of 10,000,000" in err
    assert not out.exists()


def test_a_day_at_50_per_second_validates_in_seconds_and_allow_huge_plans_past_the_limit(tmp_path, capsys):
    import time

    day = _variant(tmp_path, 'duration = "2m"', 'duration = "24h"')
    text = open(day).read().replace('rate = "5/s"', 'rate = "50/s"')
    open(day, "w").write(text)
    t0 = time.monotonic()
    assert main(["validate", day]) == 0
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    assert "4320000 requests" in out and "estimated: above 20,000 requests" in out
    assert took < 8.0, took   # drew every request before: > 2 minutes and ~16 MB/s of memory
    # 10x the limit, planned anyway on request
    week = open(day, "w").write(text.replace('duration = "24h"', 'duration = "2400h"'))
    assert week and main(["validate", day]) == 2
    capsys.readouterr()
    assert main(["validate", day, "--allow-huge"]) == 0
    assert "432000000 requests" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragment", [
    (["run", "S", "--duration", "0s"], "argument --duration: must be longer than zero, got '0s'"),
    (["simulate", "S", "--duration", "0ms"], "argument --duration: must be longer than zero"),
    (["run", "S", "--duration", "10"], "argument --duration: expected a duration string"),
    (["run", "S", "--time-scale", "1e9"], "argument --time-scale: expected at most 1000, got 1e+09"),
    (["run", "S", "--time-scale", "nan"], "argument --time-scale: expected a number > 0"),
])
def test_nonsense_flags_are_refused_naming_the_flag(tmp_path, capsys, argv, fragment):
    argv = [os.path.join(ROOT, "scenarios", "steady-chat.toml") if a == "S" else a for a in argv]
    assert main(argv + ["--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("old, new, line_key, fragment", [
    ("prefix_tokens = 5000 ", "prefix_tokens = 10000000 ", "20: workload.prefix_tokens",
     "10000000 tokens is above Claude Haiku 4.5's context window of 200000 tokens"),
    ("max_in_flight = 128", "max_in_flight = 128\ntime_scale = 1e9", "12: target.time_scale",
     "expected at most 1000, got 1e+09"),
    ("max_in_flight = 128", "max_in_flight = 128\nrequest_timeout = \"0.001ms\"", "12: target.request_timeout",
     "expected at least 1ms, got '0.001ms'"),
])
def test_plans_that_can_only_fail_are_refused_at_validation(tmp_path, capsys, old, new, line_key, fragment):
    path = _variant(tmp_path, old, new)
    err = _refused(["validate", path], capsys)
    assert err.startswith(f"{path}:{line_key}: {fragment}")


def test_a_dotted_table_header_is_reported_on_its_own_line(tmp_path, capsys):
    p = tmp_path / "s.toml"
    p.write_text(STEADY + "\n\n[foo.bar]\nx = 1\n")
    line = (STEADY + "\n\n").count("\n") + 1
    err = _refused(["validate", str(p)], capsys)
    assert err.startswith(f"{p}:{line}: foo: unknown key")


def test_an_empty_file_names_a_key_on_every_line(tmp_path, capsys):
    p = tmp_path / "empty.toml"
    p.write_text("")
    err = _refused(["validate", str(p)], capsys).splitlines()
    assert all(not ln.startswith(f"{p}:1: : ") for ln in err)
    assert f"{p}:1: arrivals: missing the traffic shape" in "\n".join(err)


@pytest.mark.parametrize("name, fragment", [
    ("café-chat", "expected ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"),
    ("-", "(not allowed: '-' at the start)"),
    ("--20261202T110853Z", "(not allowed: '-' at the start)"),
    ("a" * 100_000, "expected at most 100 characters (it names files and directories), got 100000"),
])
def test_scenario_names_that_make_bad_directory_names_blame_the_name_key(tmp_path, capsys, name, fragment):
    path = _variant(tmp_path, 'name = "steady-chat"', f'name = "{name}"')
    for argv in (["validate", path], ["simulate", path, "--out", str(tmp_path / "r")]):
        err = _refused(argv, capsys)
        assert err.startswith(f"{path}:4: name: ") and fragment in err
        assert "--out" not in err
    assert not (tmp_path / "r").exists()


def test_arm_names_say_ascii(tmp_path, capsys):
    path = _variant(tmp_path, 'name = "geo"', 'name = "géo"')
    err = _refused(["validate", path], capsys)
    assert ": arms[1].name: expected ASCII letters" in err
