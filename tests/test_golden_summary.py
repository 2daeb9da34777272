"""summary.json of fixed scenarios in virtual time is pinned: a restructure or refactor
must leave every figure exactly as it was.

The golden files were written by `loadgen simulate` at commit 538a37f (before the code
moved into one package per pipeline stage), with `wall_s` (wall-clock time, the only
figure that is not a function of the scenario and seed) removed. When a change means
to alter a figure, regenerate them on purpose and say why in the commit. Regenerated on
2026-12-03: the emulator draws each attempt's latency from the attempt's name (common
random numbers, emulator/draws.py), so the latency figures moved; counts, tokens and
costs did not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from result_files import only_dir

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("name", ["slow-agent", "steady-chat"])
def test_simulate_summary_is_unchanged(name, tmp_path, capsys):
    assert main(["simulate", str(ROOT / "scenarios" / f"{name}.toml"), "--out", str(tmp_path), "--quiet"]) == 0
    got = json.loads((only_dir(tmp_path) / "summary.json").read_text())
    got.pop("wall_s")
    want = json.loads((GOLDEN / f"{name}.summary.json").read_text())
    assert got == want
