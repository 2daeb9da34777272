"""Shared by the tests that run a command: find its one results directory and read it."""

from __future__ import annotations

import json
from pathlib import Path


def only_dir(out: Path) -> Path:
    """The single results directory a command wrote under `out` (fails on none or several)."""
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_results(d: Path) -> tuple[dict, list[dict]]:
    """summary.json and every requests.jsonl record of results directory `d`."""
    summary = json.loads((d / "summary.json").read_text())
    lines = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines() if x.strip()]
    return summary, lines
