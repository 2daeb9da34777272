"""The Python API (`loadgen.load_scenario`, `loadgen.simulate`, `loadgen.run`): what a
notebook or CI script gets back is the same as the files the run wrote."""

from __future__ import annotations

import gc
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import loadgen
from loadgen.api.result import RunResult, SweepResult
from loadgen.scenario import ScenarioError
from scenario_text import haiku_scenario

ROOT = Path(__file__).resolve().parent.parent

TINY = haiku_scenario(name="tiny", seed=5, duration="10s", time_scale=20, rate="1/s", stream=True, arms="""
[[arms]]
name = "ttl-5m"
cache_ttl = "5m"

[[arms]]
name = "ttl-1h"
cache_ttl = "1h"
""")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(textwrap.dedent(TINY))
    return p


def written(res: RunResult) -> dict:
    return json.loads((res.path / "summary.json").read_text())


def assert_matches_files(res: RunResult) -> None:
    """.summary is summary.json; .arms and .records() carry its figures."""
    assert res.summary == written(res)
    records = res.records()
    assert list(res.iter_records()) == records   # the stream and the list agree
    for name, arm in res.arms.items():
        s = res.summary["arms"][name]
        assert arm.cost.per_1000 == s["cost_usd"]["per_1000"]
        assert arm.cost.total == s["cost_usd"]["total"]
        assert arm.latency_ms["ttft"]["p99"] == s["latency_ms"]["ttft"]["p99"]
        mine = [r for r in records if r["arm"] == name]
        assert len(mine) == arm.requests["sent"] > 0
        assert sum(r["cost_usd"] for r in mine) == pytest.approx(arm.cost.total, abs=1e-6)


def test_the_api_is_three_names_loaded_on_first_use():
    assert set(loadgen.__all__) == {"__version__", "load_scenario", "simulate", "run"}
    # `loadgen --version` must not pay for aiobotocore and the runner
    code = "import loadgen, sys; print('loadgen.api' in sys.modules, callable(loadgen.simulate))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_load_scenario_reports_every_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent(TINY).replace('duration = "10s"', 'duration = "-3s"'))
    with pytest.raises(ScenarioError) as e:
        loadgen.load_scenario(bad)
    assert str(bad) in str(e.value) and "duration" in str(e.value)


def test_load_scenario_checks_the_emulator_table_as_validate_does(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(textwrap.dedent(TINY).replace('latency = "fast"', 'latency = "warp9"'))
    with pytest.raises(ScenarioError) as e:
        loadgen.load_scenario(bad)
    assert "emulator.latency" in str(e.value)


def test_simulate_returns_the_summary_it_wrote(tiny, tmp_path):
    sc = loadgen.load_scenario(tiny)
    res = loadgen.simulate(sc, out=tmp_path / "out")
    assert isinstance(res, RunResult) and res.exit_code == 0
    assert res.summary["clock"] == "virtual"
    assert_matches_files(res)


def test_run_returns_the_summary_it_wrote(tiny, tmp_path):
    res = anyio.run(lambda: loadgen.run(loadgen.load_scenario(tiny), out=tmp_path / "out", target="emulator"))
    assert isinstance(res, RunResult) and res.exit_code == 0
    assert res.summary["clock"] == "warp" and res.summary["target"] == "emulator"
    assert_matches_files(res)
    # the run froze the collector's long-lived objects for its duration only: a process
    # that runs many runs still frees each one's objects afterwards
    assert gc.get_freeze_count() == 0


def test_a_sweep_returns_one_result_per_point(tiny, tmp_path):
    res = loadgen.simulate(loadgen.load_scenario(tiny), out=tmp_path / "out",
                           sweep={"workload.prefix_tokens": [5024, 6000]})
    assert isinstance(res, SweepResult) and res.exit_code == 0
    assert res.summary == json.loads((res.path / "sweep.json").read_text())
    assert len(res.points) == 2 and len(res.rows) == 4
    for point in res.points:
        assert_matches_files(point)


def test_simulate_runs_where_an_event_loop_is_running(tiny, tmp_path):
    """A notebook cell runs inside an event loop; simulate still works there."""
    async def cell() -> RunResult:
        return loadgen.simulate(tiny, out=tmp_path / "out")

    res = anyio.run(cell)
    assert res.exit_code == 0 and res.summary == written(res)


def test_nothing_below_the_commands_takes_an_argparse_namespace():
    pkg = ROOT / "loadgen"
    users = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
             if p.parent.name != "commands" and re.search(r"^\s*(import|from) argparse\b", p.read_text(), re.M)]
    assert users == []


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the Python API section holds one example"
    return blocks[0]


def test_the_readme_example_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    summary = json.loads(next((tmp_path / "results").glob("*/summary.json")).read_text())
    arm = summary["arms"]["ttl-1h"]
    assert out == (f"ttl-1h: ${arm['cost_usd']['per_1000']:.2f} per 1000 requests, "
                   f"p99 TTFT {arm['latency_ms']['ttft']['p99']:.0f} ms\n")
