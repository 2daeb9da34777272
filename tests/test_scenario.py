"""The scenario language: shipped scenarios load, values mean what the docs say, and
every mistake is reported as `file:line: key: message`."""

from __future__ import annotations

import glob
import os
import random
import re
import textwrap

import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.scenario import arrivals, distributions
from loadgen.scenario import ScenarioError, load, loads
from loadgen.scenario.units import format_duration, parse_duration, parse_rate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))
BAD = sorted(glob.glob(os.path.join(ROOT, "tests", "bad_scenarios", "*.toml")))
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"

BASE = """\
name = "t"
seed = 5
duration = "1m"

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 256

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 20
output_tokens = 100

[arrivals]
kind = "constant"
rate = "1/s"
"""


def write(tmp_path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def problems(path: str) -> list[str]:
    """The problems `loadgen run` reports, [emulator] checked by the emulator as it does."""
    with pytest.raises(ScenarioError) as e:
        load(path, check_emulator=EmulatorConfig.from_mapping)
    return e.value.problems


# --------------------------------------------------------------------------- shipped scenarios

def test_all_four_scenarios_ship():
    names = {os.path.basename(p) for p in SHIPPED}
    assert {"slow-agent.toml", "steady-chat.toml", "seed-reference.toml", "ramp-to-quota.toml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=os.path.basename)
def test_shipped_scenario_loads_without_warnings(path):
    sc = load(path)
    assert sc.arms and sc.duration > 0
    assert sc.warnings == ()
    assert sc.path == path
    with open(path, encoding="utf-8") as f:
        assert sc.source == f.read()


def test_slow_agent_is_the_design_sketch():
    sc = load(os.path.join(ROOT, "scenarios", "slow-agent.toml"))
    assert (sc.name, sc.seed, sc.duration) == ("slow-agent", 7, 7200.0)
    assert sc.target.time_scale == 60
    w = sc.workload
    assert (w.kind, w.prefix_tokens, w.turns_min, w.turns_max) == ("agent", 6000, 5, 20)
    assert w.turn_tokens == distributions.Lognormal(median=300, p90=1200)
    assert sc.sessions.arrival == arrivals.Poisson(rate=12 / 3600)
    assert sc.sessions.think_time == distributions.Lognormal(median=180, p90=900)
    assert sc.arrivals is None
    assert [(a.name, a.cache_ttl, a.profile, a.model_id) for a in sc.arms] == [
        ("ttl-5m", "5m", "geo", "us." + HAIKU), ("ttl-1h", "1h", "geo", "us." + HAIKU)]
    assert (sc.retry.policy, sc.retry.max_attempts) == ("exponential", 4)


def test_seed_reference_sends_exactly_four_requests_with_its_price_override():
    sc = load(os.path.join(ROOT, "scenarios", "seed-reference.toml"))
    assert list(sc.arrivals.offsets(sc.duration, random.Random(sc.seed))) == [0, 10, 20, 30]
    assert sc.workload.prefix_tokens == 5024
    assert {a.name: a.cache for a in sc.arms} == {"baseline": False, "cached": True}
    (o,) = sc.pricing
    assert (o.model_id, o.input_per_mtok, o.output_per_mtok) == ("us." + HAIKU, 1.0, 5.0)


def test_steady_chat_compares_the_three_profiles():
    sc = load(os.path.join(ROOT, "scenarios", "steady-chat.toml"))
    assert [a.model_id for a in sc.arms] == [HAIKU, "us." + HAIKU, "global." + HAIKU]
    assert [a.profile for a in sc.arms] == ["region", "geo", "global"]


def test_ramp_to_quota_passes_its_emulator_table_through():
    sc = load(os.path.join(ROOT, "scenarios", "ramp-to-quota.toml"))
    assert sc.arrivals.kind == "stages" and sc.arrivals.start_rate == 0
    assert [s.target for s in sc.arrivals.stages] == [2, 10, 10]
    assert sc.emulator == {"quotas": {"tpm": 400000}}


# --------------------------------------------------------------------------- units

@pytest.mark.parametrize("text,seconds", [
    ("250ms", 0.25), ("6s", 6), ("6m", 360), ("6min", 360), ("1h", 3600), ("1.5h", 5400),
    ("2h30m", 9000), ("1m30s", 90), (".5s", 0.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad,fragment", [
    (6, 'add a unit, e.g. "6s"'), ("6", "add a unit"), ("-5s", "cannot be negative"),
    ("5 fortnights", "expected a duration"), (True, "got a boolean")])
def test_bad_durations_say_what_was_expected(bad, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_duration(bad)


@pytest.mark.parametrize("text,per_s", [("20/s", 20), ("12/m", 0.2), ("12/min", 0.2), ("12/h", 12 / 3600),
                                        ("0.5/s", 0.5)])
def test_rates(text, per_s):
    assert parse_rate(text) == pytest.approx(per_s)


def test_format_duration_round_trips():
    for s in (0.25, 6, 90, 3600, 9000):
        assert parse_duration(format_duration(s)) == pytest.approx(s)


def test_units_reach_the_dataclasses(tmp_path):
    sc = load(write(tmp_path, BASE.replace('duration = "1m"', 'duration = "1.5h"')
                    .replace('rate = "1/s"', 'rate = "12/min"')
                    + '[target]\nrequest_timeout = "800ms"\n[retry]\npolicy = "fixed"\nmax_attempts = 2\nbase = "250ms"\n'))
    assert sc.duration == 5400
    assert sc.arrivals.rate == pytest.approx(0.2)
    assert sc.target.request_timeout == pytest.approx(0.8)
    assert (sc.retry.policy, sc.retry.max_attempts, sc.retry.base) == ("fixed", 2, 0.25)


def test_defaults_when_keys_are_left_out(tmp_path):
    sc = load(write(tmp_path, BASE))
    assert sc.target.kind == "emulator" and sc.target.region == "us-east-1"
    assert sc.retry.policy == "off" and sc.retry.max_attempts == 1
    (arm,) = sc.arms
    assert (arm.name, arm.model_id, arm.profile, arm.cache, arm.cache_ttl, arm.max_tokens) == (
        "default", HAIKU, "region", True, "5m", 256)
    assert sc.workload.question_tokens == distributions.Constant(value=20)


# --------------------------------------------------------------------------- distributions and processes

def test_distribution_kinds(tmp_path):
    (tmp_path / "sizes.txt").write_text("# output sizes\n100\n250\n\n400\n")
    sc = load(write(tmp_path, BASE.replace("question_tokens = 20",
                                           'question_tokens = { dist = "uniform", low = 10, high = 40 }')
                    .replace("output_tokens = 100", 'output_tokens = { dist = "empirical", file = "sizes.txt" }')))
    assert sc.workload.question_tokens == distributions.Uniform(low=10, high=40)
    assert sc.workload.output_tokens.values == (100, 250, 400)


def test_empirical_csv_column_and_time_values(tmp_path):
    (tmp_path / "gaps.csv").write_text("session,gap_s\n1,30\n2,90\n")
    agent = BASE.replace('kind = "single"', 'kind = "agent"\nturn_tokens = { dist = "exponential", mean = 200 }\n'
                         'turns = 3').replace("question_tokens = 20\n", "")
    agent = agent.replace('[arrivals]\nkind = "constant"\nrate = "1/s"\n',
                          '[sessions]\narrival = { kind = "poisson", rate = "1/m" }\n'
                          'think_time = { dist = "empirical", file = "gaps.csv", column = "gap_s" }\n')
    sc = load(write(tmp_path, agent))
    assert sc.sessions.think_time.values == (30, 90)
    assert (sc.workload.turns_min, sc.workload.turns_max) == (3, 3)
    inline = agent.replace('{ dist = "empirical", file = "gaps.csv", column = "gap_s" }',
                           '{ dist = "empirical", values = ["30s", "1.5m"] }')
    assert load(write(tmp_path, inline, "b.toml")).sessions.think_time.values == (30, 90)


@pytest.mark.parametrize("table,expected", [
    ('kind = "poisson"\nrate = "20/s"', arrivals.Poisson(rate=20)),
    ('kind = "bursts"\nevery = "1m"\nsize = 50\nspread = "2s"\nrate = "1/s"',
     arrivals.Bursts(every=60, size=50, spread=2, rate=1)),
    ('kind = "stages"\nstart_rate = "0/s"\nstages = [{ duration = "5m", target = "10/s" }]',
     arrivals.Stages(start_rate=0, stages=(arrivals.Stage(300, 10),))),
])
def test_arrival_processes(tmp_path, table, expected):
    sc = load(write(tmp_path, BASE.replace('kind = "constant"\nrate = "1/s"', table)))
    assert sc.arrivals == expected


def test_trace_csv_and_jsonl_relative_to_the_scenario(tmp_path):
    (tmp_path / "t.csv").write_text("offset,input_tokens,output_tokens\n2.0,5100,80\n0.5,,\n")
    (tmp_path / "t.jsonl").write_text('{"offset": 4}\n{"offset": 1, "output_tokens": 50}\n')
    sc = load(write(tmp_path, BASE.replace('kind = "constant"\nrate = "1/s"',
                                           'kind = "trace"\nfile = "t.csv"\ntime_scale = 2.0')))
    assert sc.arrivals.points == (arrivals.TracePoint(0.25), arrivals.TracePoint(1.0, 5100, 80))
    sc = load(write(tmp_path, BASE.replace('kind = "constant"\nrate = "1/s"', 'kind = "trace"\nfile = "t.jsonl"')))
    assert [p.offset for p in sc.arrivals.points] == [1, 4]


def test_a_bad_row_in_a_trace_file_names_that_file_and_line(tmp_path):
    (tmp_path / "t.csv").write_text("offset\n1\nsoon\n")
    msgs = problems(write(tmp_path, BASE.replace('kind = "constant"\nrate = "1/s"', 'kind = "trace"\nfile = "t.csv"')))
    assert msgs == [f"{tmp_path / 't.csv'}:3: offset: expected a number of seconds >= 0, got 'soon'"]


# --------------------------------------------------------------------------- arms

def test_arm_overrides_and_profile_rewriting(tmp_path):
    sc = load(write(tmp_path, BASE.replace('[model]', '[target]\nregion = "eu-west-1"\n\n[model]') + """
[[arms]]
name = "geo"
profile = "geo"

[[arms]]
name = "sonnet-global"
model = "anthropic.claude-sonnet-4-5-20250929-v1:0"
profile = "global"
cache_ttl = "1h"
stream = false
max_tokens = 1000
temperature = 0.2
service_tier = "default"

[[arms]]
name = "as-written"
model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
cache = false
"""))
    geo, son, written = sc.arms
    assert (geo.model_id, geo.profile, geo.max_tokens, geo.stream) == ("eu." + HAIKU, "geo", 256, True)
    assert (son.model_id, son.profile, son.cache_ttl, son.stream, son.max_tokens, son.temperature,
            son.service_tier) == ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "global", "1h", False,
                                  1000, 0.2, "default")
    assert (written.model_id, written.profile, written.cache) == (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "geo", False)


# --------------------------------------------------------------------------- errors

def _expectations(path: str) -> list[tuple[int, str, str]]:
    """(line, key, fragment) from `# expect: KEY | fragment` comments in a fixture."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.search(r"# expect: (.+?) \| (.+)$", line)
            if m:
                out.append((n, m.group(1), m.group(2).strip()))
    return out


def test_there_are_at_least_twelve_distinct_bad_fixtures():
    assert len(BAD) >= 12
    assert all(_expectations(p) for p in BAD)


@pytest.mark.parametrize("path", BAD, ids=os.path.basename)
def test_bad_scenario_names_file_line_and_key(path):
    msgs = problems(path)
    for line, key, fragment in _expectations(path):
        prefix = f"{path}:{line}: {key}: "
        hits = [m for m in msgs if m.startswith(prefix)]
        assert hits, f"no problem starting {prefix!r} in:\n" + "\n".join(msgs)
        assert any(fragment in m for m in hits), f"{fragment!r} not in {hits}"


def test_every_problem_is_reported_in_line_order():
    path = os.path.join(ROOT, "tests", "bad_scenarios", "many_problems.toml")
    msgs = problems(path)
    assert len(msgs) == 4
    lines = [int(m.split(":")[1]) for m in msgs]
    assert lines == sorted(lines) == [line for line, _, _ in _expectations(path)]


def test_did_you_mean_for_keys_tables_and_values(tmp_path):
    msgs = problems(write(tmp_path, BASE.replace("seed = 5", "sed = 5").replace('kind = "single"', 'kind = "singel"')
                          + "[retrys]\npolicy = \"exponentail\"\n"))
    text = "\n".join(msgs)
    assert ":2: sed: unknown key; did you mean 'seed'?" in text
    assert ":10: workload.kind: expected one of \"single\", \"agent\", got 'singel'; did you mean 'single'?" in text
    assert ":18: retrys: unknown key; did you mean 'retry'?" in text


def test_a_missing_file_is_one_clear_line(tmp_path):
    missing = str(tmp_path / "nope.toml")
    assert problems(missing) == [f"{missing}: cannot read scenario file: No such file or directory"]


def test_time_scale_is_rejected_for_aws(tmp_path):
    msgs = problems(write(tmp_path, BASE + '[target]\nkind = "aws"\ntime_scale = 60\n'))
    assert msgs == [f"{tmp_path / 's.toml'}:20: target.time_scale: time_scale applies to the emulator target only; "
                    'kind = "aws" always runs on the real clock (remove time_scale or set it to 1)']


def test_empirical_file_missing_names_the_key(tmp_path):
    msgs = problems(write(tmp_path, BASE.replace("output_tokens = 100",
                                                 'output_tokens = { dist = "empirical", file = "gone.txt" }')))
    (m,) = msgs
    assert m.startswith(f"{tmp_path / 's.toml'}:13: workload.output_tokens.file: cannot read empirical data file")


def test_neither_arrivals_nor_sessions(tmp_path):
    msgs = problems(write(tmp_path, BASE.split("[arrivals]")[0]))
    assert any(":9: workload: missing the traffic shape" in m for m in msgs)


def test_emulator_table_errors_land_on_their_line(tmp_path):
    msgs = problems(write(tmp_path, BASE + "\n[emulator.quotas]\ntpm = 1000\nwindoww = \"sliding\"\n"))
    (m,) = msgs
    assert m.startswith(f"{tmp_path / 's.toml'}:21: emulator.quotas.windoww: ")


EMULATOR_TABLE = BASE + "\n[emulator.quotas]\ntpm = 1000\nwindow = \"sliding\"\n"


class _Structured(ValueError):
    def __init__(self, path: tuple, message: str) -> None:
        super().__init__("text the parser must not read")
        self.path, self.message = path, message


def test_a_structured_emulator_error_is_placed_by_its_path_not_its_text():
    def check(table):
        raise _Structured(("quotas", "window"), "expected fixed or sliding")

    with pytest.raises(ScenarioError) as e:
        loads(EMULATOR_TABLE, "s.toml", check_emulator=check)
    assert e.value.problems == ["s.toml:21: emulator.quotas.window: expected fixed or sliding"]


def test_an_emulator_error_without_a_path_is_placed_at_the_emulator_table():
    """The parser never reads an error's text for a key: a check that gives no path is
    reported at [emulator], with its message as it is."""
    def check(table):
        raise ValueError("emulator.quotas.tpm: a message the parser must not parse")

    with pytest.raises(ScenarioError) as e:
        loads(EMULATOR_TABLE, "s.toml", check_emulator=check)
    (problem,) = e.value.problems
    assert problem.startswith("s.toml:19: emulator: ")


def test_the_emulators_own_error_for_a_dotted_key_lands_on_its_line():
    """The real check: a model id holding dots inside a quoted key is one key of the path."""
    text = BASE + '\n[emulator.quotas.models."us.anthropic.x"]\ntpm = -5\n'
    with pytest.raises(ScenarioError) as e:
        loads(text, "s.toml", check_emulator=EmulatorConfig.from_mapping)
    (problem,) = e.value.problems
    assert problem.startswith('s.toml:20: emulator.quotas.models."us.anthropic.x".tpm: '), problem


SEVERAL_EMULATOR_PROBLEMS = """
[emulator]
latency = "fsat"

[emulator.quotas]
tpm = "lots"
rmp = 5

[emulator.cache]
scope = "region"
max_entrie = 10
"""


def test_every_emulator_problem_is_listed_at_once_in_line_order_with_the_scenarios():
    """[emulator] problems come all at once, among the rest of the scenario's, in line
    order, with the did-you-mean every other table gives (it used to stop at the first)."""
    text = BASE.replace("seed = 5", 'seed = "five"') + SEVERAL_EMULATOR_PROBLEMS
    with pytest.raises(ScenarioError) as e:
        loads(text, "s.toml", check_emulator=EmulatorConfig.from_mapping)
    assert e.value.problems == [
        "s.toml:2: seed: expected a whole number, got a string 'five'",
        "s.toml:20: emulator.latency: expected one of 'realistic', 'fast', got 'fsat'; did you mean 'fast'?",
        "s.toml:23: emulator.quotas.tpm: expected a non-negative integer, got 'lots'",
        "s.toml:24: emulator.quotas.rmp: unknown key; did you mean 'rpm'?",
        "s.toml:28: emulator.cache.max_entrie: unknown key; did you mean 'max_entries'?",
    ]


def test_without_an_emulator_check_the_table_is_kept_as_is():
    sc = loads(BASE + "\n[emulator.quotas]\nwindoww = \"sliding\"\n", "s.toml")
    assert sc.emulator == {"quotas": {"windoww": "sliding"}}


# --------------------------------------------------------------------------- warnings

def test_prefix_below_the_cache_minimum_is_a_warning_not_an_error(tmp_path):
    sc = load(write(tmp_path, BASE.replace("prefix_tokens = 5000", "prefix_tokens = 3000")
                    + '[[arms]]\nname = "cached"\n\n[[arms]]\nname = "off"\ncache = false\n'))
    (w,) = sc.warnings  # only the arm that asks for caching
    assert w.startswith(f"{tmp_path / 's.toml'}:11: workload.prefix_tokens: arm 'cached' asks for caching")
    assert "below Claude Haiku 4.5's cache minimum of 4096 tokens" in w
    assert "silently ignores" in w and "full input price" in w


def test_sonnet_has_a_lower_cache_minimum(tmp_path):
    sc = load(write(tmp_path, BASE.replace("prefix_tokens = 5000", "prefix_tokens = 2000").replace(
        HAIKU, "us.anthropic.claude-sonnet-4-5-20250929-v1:0")))  # profile-only: no bare id
    assert sc.warnings == ()


# --------------------------------------------------------------------------- thresholds in scenarios

def test_thresholds_for_all_arms_and_per_arm(tmp_path):
    sc = load(write(tmp_path, BASE + """
[thresholds]
all = ["p99(ttft) < 2s", "throttle_rate < 1%"]

[thresholds.arms]
"ttl-1h" = ["warm_ratio > 80%"]

[[arms]]
name = "ttl-1h"
cache_ttl = "1h"
"""))
    assert [(t.expr, t.arm, t.line) for t in sc.thresholds] == [
        ("p99(ttft) < 2s", None, 20), ("throttle_rate < 1%", None, 20), ("warm_ratio > 80%", "ttl-1h", 23)]


def test_loads_reports_syntax_errors_with_line():
    with pytest.raises(ScenarioError) as e:
        loads('name = "x"\nduration = \n', "mem.toml")
    assert e.value.problems[0].startswith("mem.toml:2: TOML syntax error: ")
