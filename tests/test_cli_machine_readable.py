"""The CLI as a CI job meets it: `--format json` (one document on stdout), `--results-dir`
(exactly that directory, never an existing non-empty one), `--set KEY=VALUE`, and every
command's --help with a description and its exit codes."""

from __future__ import annotations

import argparse
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import loadgen
from loadgen import exit_codes
from loadgen.commands.cli import build_parser, main
from scenario_text import HAIKU, haiku_scenario

ROOT = Path(__file__).resolve().parent.parent

# Two arms, a threshold every arm passes and one every arm fails (no arm costs a cent per 1000).
QUICK = haiku_scenario(name="quick-ci", seed=5, duration="30s", time_scale=1, rate="1/s", arms="""
[[arms]]
name = "cached"
cache_ttl = "5m"

[[arms]]
name = "plain"
cache = false
""", after="""
[thresholds]
all = ["error_rate < 50%", "cost_per_1000 < $0.01"]
""")


def write(tmp_path: Path, text: str = QUICK, name: str = "quick.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def one_json(out: str) -> dict:
    """stdout must be exactly one JSON document (json.loads fails on anything more)."""
    return json.loads(out)


# ---- --help


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_help_has_a_description_and_its_exit_codes(capsys):
    codes = {v for k, v in vars(exit_codes).items() if k.startswith("EXIT_")}
    commands = _subcommands()
    assert {"run", "simulate", "validate", "emulator", "pricing", "report", "compare"} <= set(commands)
    for name, parser in commands.items():
        assert main([name, "--help"]) == 0
        text = capsys.readouterr().out
        assert parser.description, f"{name} --help has no description"
        assert " ".join(parser.description.split()[:4]) in " ".join(text.split()), name
        assert "exit codes:" in text, name
        listed = {int(line.split()[0]) for line in text.split("exit codes:")[1].strip().splitlines()}
        assert listed and listed <= codes, (name, listed)
        assert exit_codes.EXIT_BAD_INPUT in listed and exit_codes.EXIT_OK in listed, name
    assert main(["--help"]) == 0
    assert "exit codes:" in capsys.readouterr().out


# ---- --format json and --results-dir


def test_run_json_prints_one_document_and_writes_exactly_the_results_dir(tmp_path, capsys):
    sc = write(tmp_path)
    d = tmp_path / "ci" / "deep" / "run-1"  # parents are made
    code = main(["run", str(sc), "--format", "json", "--results-dir", str(d), "--max-requests", "4"])
    out, err = capsys.readouterr()
    assert code == exit_codes.EXIT_THRESHOLD  # cost_per_1000 < $0.01 fails: the exit code is unchanged by json
    doc = one_json(out)
    assert doc["kind"] == "run" and doc["exit_code"] == code
    assert Path(doc["results_dir"]) == d
    assert doc["summary"] == json.loads((d / "summary.json").read_text())
    assert doc["thresholds_failed"] == 2 and len(doc["thresholds"]) == 4
    assert {"results_dir", "exit_code", "summary", "thresholds", "interrupted"} <= set(doc)
    assert (d / "requests.jsonl").exists() and (d / "scenario.toml").exists()
    assert [p.name for p in d.parent.iterdir()] == ["run-1"]  # no <scenario>-<time> folder beside it
    assert "results in" in err  # the header went to stderr


def test_results_dir_that_holds_anything_is_refused_and_left_alone(tmp_path, capsys):
    sc = write(tmp_path)
    d = tmp_path / "taken"
    d.mkdir()
    (d / "keep.txt").write_text("mine")
    for cmd in (["run"], ["simulate"], ["simulate", "--sweep", "arrivals.rate=1/s,2/s"]):
        assert main([*cmd, str(sc), "--results-dir", str(d), "--quiet"]) == exit_codes.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "--results-dir" in err and "not empty" in err
        assert [p.name for p in d.iterdir()] == ["keep.txt"]
        assert (d / "keep.txt").read_text() == "mine"
    # an empty directory (made by the CI job beforehand) is used as it is
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["simulate", str(sc), "--results-dir", str(empty), "--quiet"]) == exit_codes.EXIT_THRESHOLD
    assert (empty / "summary.json").exists()
    # and a second run into it is refused: never overwritten
    assert main(["simulate", str(sc), "--results-dir", str(empty), "--quiet"]) == exit_codes.EXIT_BAD_INPUT
    # --format json and an interval stream on stdout do not combine (one of them would be spoiled)
    assert main(["simulate", str(sc), "--format", "json", "--output", "jsonl=-", "--out", str(tmp_path / "x")]) == 2
    assert "--output jsonl=-" in capsys.readouterr().err
    # --out and --results-dir do not combine
    assert main(["simulate", str(sc), "--results-dir", str(tmp_path / "x"), "--out", str(tmp_path)]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_simulate_sweep_json_junit_and_set_together(tmp_path, capsys):
    """One sweep for all three (each sweep point draws its plots: seconds): the document is
    sweep.json, --results-dir is the sweep's parent, --set edits the base of every point,
    --junit has one suite per point."""
    sc = write(tmp_path)
    d, junit = tmp_path / "sweep", tmp_path / "junit.xml"
    code = main(["simulate", str(sc), "--sweep", "arrivals.rate=1/s,2/s", "--set", "arms.plain.max_tokens=32",
                 "--format", "json", "--results-dir", str(d), "--junit", str(junit)])
    doc = one_json(capsys.readouterr().out)
    assert code == doc["exit_code"] == exit_codes.EXIT_THRESHOLD
    assert doc["kind"] == "sweep" and Path(doc["results_dir"]) == d
    assert doc["sweep"] == json.loads((d / "sweep.json").read_text())
    points = doc["sweep"]["points"]
    assert [p["label"] for p in points] == ["rate=1/s", "rate=2/s"]
    for p in points:
        kept = (d / p["results"] / "scenario.toml").read_text()
        assert "max_tokens = 32" in kept and "on a base with --set arms.plain.max_tokens=32" in kept
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["quick-ci rate=1/s", "quick-ci rate=2/s"]
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("4", "2"), ("4", "2")]


def test_validate_and_pricing_json(tmp_path, capsys):
    sc = write(tmp_path)
    assert main(["validate", str(sc), "--format", "json"]) == 0
    plan = one_json(capsys.readouterr().out)
    assert plan["kind"] == "plan" and plan["scenario"] == "quick-ci"
    assert plan["requests_per_arm"] == 30  # 1/s for 30 s, constant
    assert [a["name"] for a in plan["arms"]] == ["cached", "plain"]
    cached, plain = plan["arms"]
    assert cached["cost_warm_usd"] < cached["cost_cold_usd"] and plain["cost_warm_usd"] == plain["cost_cold_usd"]
    assert [t["expr"] for t in plan["thresholds"]] == ["error_rate < 50%", "cost_per_1000 < $0.01"]

    assert main(["pricing", "--format", "json"]) == 0
    cat = one_json(capsys.readouterr().out)
    assert cat["kind"] == "pricing" and cat["unit"] == "USD per 1M tokens"
    haiku = [r for r in cat["models"] if r["model_id"] == HAIKU and r["profile"] == "geo"]
    assert len(haiku) == 1 and haiku[0]["input_per_mtok"] > 0

    # a bad scenario: nothing on stdout, the problems on stderr, exit 2 as before
    bad = write(tmp_path, QUICK.replace('rate = "1/s"', 'rate = "fast"'), "bad.toml")
    assert main(["validate", str(bad), "--format", "json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "arrivals.rate" in err


# ---- --set


def test_set_changes_the_run_and_the_kept_scenario(tmp_path, capsys):
    sc = write(tmp_path)
    d = tmp_path / "r"
    assert main(["simulate", str(sc), "--set", "arrivals.rate=2/s", "--set", "arms.plain.max_tokens=32",
                 "--set", "thresholds.all=[]", "--results-dir", str(d), "--format", "json"]) == 0
    doc = one_json(capsys.readouterr().out)
    assert doc["summary"]["arms"]["cached"]["requests"]["sent"] == 60  # 2/s for 30 s
    kept = (d / "scenario.toml").read_text()
    assert 'rate = "2/s"' in kept and "max_tokens = 32" in kept and "--set" in kept.splitlines()[0]
    assert doc["thresholds"] == []


@pytest.mark.parametrize("flag, says", [
    ("arrivals.rate=-1/s", "--set arrivals.rate: arrivals.rate: "),      # the value typed is wrong
    ("arms.plain.cache_ttl=2h", "--set arms.plain.cache_ttl: arms[1].cache_ttl: "),
    ("arrivals.rate.x=1", "--set arrivals.rate.x: arrivals.rate is a value"),  # the path, as --sweep says
    ("arrivals..rate=1", "--set arrivals..rate: cannot read key"),
    ("arrivals.rate", "--set 'arrivals.rate': expected KEY=VALUE"),
])
def test_set_errors_name_the_flag_and_exit_2(tmp_path, capsys, flag, says):
    sc = write(tmp_path)
    for cmd in ("run", "simulate", "validate"):
        assert main([cmd, str(sc), "--set", flag, "--out", str(tmp_path / "r")][:-2 if cmd == "validate" else None]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_set_that_makes_the_files_own_value_wrong_points_at_its_line(tmp_path, capsys):
    # Sonnet 4.5 has no in-Region on-demand id (Haiku 4.5 has): setting the model makes the
    # file's own `profile = "region"` wrong, so the message points at that line
    text = QUICK.replace(f'id = "us.{HAIKU}"', f'id = "{HAIKU}"').replace(
        'name = "cached"', 'name = "cached"\nprofile = "geo"').replace('name = "plain"', 'name = "plain"\nprofile = "region"')
    sc = write(tmp_path, text, "own.toml")
    assert main(["validate", str(sc)]) == 0
    capsys.readouterr()
    assert main(["validate", str(sc), "--set", "model.id=anthropic.claude-sonnet-4-5-20250929-v1:0"]) == 2
    err = capsys.readouterr().err
    line = sc.read_text().splitlines().index('profile = "region"') + 1
    assert f"{sc}:{line}: arms[1].profile: Claude Sonnet 4.5 is not served on demand" in err
    assert "(with --set model.id)" in err


def test_set_and_sweep_of_the_same_key_is_refused(tmp_path, capsys):
    sc = write(tmp_path)
    assert main(["simulate", str(sc), "--set", "arrivals.rate=2/s", "--sweep", "arrivals.rate=1/s,3/s",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--set arrivals.rate: the key is also swept" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_api_takes_results_dir_and_sets_as_the_flags_do(tmp_path):
    sc = write(tmp_path)
    with pytest.raises(ValueError, match="--set arrivals.rate: arrivals.rate: "):
        loadgen.simulate(sc, sets=["arrivals.rate=-1/s"], out=tmp_path / "r")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("")
    with pytest.raises(ValueError, match="--results-dir: .* not empty"):
        loadgen.simulate(sc, results_dir=taken, sets=["thresholds.all=[]"])
    assert not (tmp_path / "r").exists() and [p.name for p in taken.iterdir()] == ["x"]


# ---- every flag has help text and is in README


# Flags README explains once for every command ("Logging"), not in each command's section
_EVERY_COMMAND = {"-h", "--help", "-v", "--verbose", "--log-level"}


def _flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not set(a.option_strings) <= _EVERY_COMMAND]


def _readme_section(name: str) -> str:
    """The README text under the `### `loadgen NAME ...`` heading(s) naming the command
    (calibrate's section is named for what it is for)."""
    parts = (ROOT / "README.md").read_text().split("\n### ")
    if name == "calibrate":
        return "\n".join(p for p in parts if p.startswith("Calibrate once"))
    return "\n".join(p for p in parts if p.startswith("`loadgen ") and
                     f"`loadgen {name}" in p.split("\n", 1)[0])


def test_every_flag_has_help_text():
    missing = [f"{name} {a.option_strings[-1]}" for name, parser in _subcommands().items()
               for a in _flags(parser) if not a.help]
    assert missing == []


def test_every_flag_is_in_its_commands_readme_section():
    """`run`'s flag table, and each other command's section, names every flag its --help lists."""
    missing = []
    for name, parser in _subcommands().items():
        section = _readme_section(name)
        assert section, f"README has no section for loadgen {name}"
        table = [line for line in section.splitlines() if line.startswith("| `--")]
        where = "\n".join(table) if name == "run" else section
        missing += [f"{name} {a.option_strings[-1]}" for a in _flags(parser)
                    if not re.search(rf"(?<![\w-]){a.option_strings[-1]}(?![\w-])", where)]
    assert missing == []


def test_only_commands_that_sweep_speak_of_a_sweep_in_their_exit_codes(capsys):
    for name in _subcommands():
        assert main([name, "--help"]) == 0
        codes = capsys.readouterr().out.split("exit codes:")[1]
        assert ("sweep" in codes) == (name == "simulate"), (name, codes)
