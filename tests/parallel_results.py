"""Shared by the parallel-simulate tests: a sweep or find-max-rate output with everything
that depends on the wall clock or the folder's own name taken out, so the serial and the
parallel runs of the same thing can be compared whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WALL_KEYS = {"wall_s", "wall_start"}


def strip_wall(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: strip_wall(v) for k, v in x.items() if k not in WALL_KEYS}
    if isinstance(x, list):
        return [strip_wall(v) for v in x]
    return x


def comparable(parent: Path, top: str) -> dict[str, Any]:
    """`top` (sweep.json / maxrate.json), sweep.csv, and every point's summary.json and
    requests.jsonl under `parent`, wall times removed, by relative path."""
    out: dict[str, Any] = {top: strip_wall(json.loads((parent / top).read_text()))}
    if (parent / "sweep.csv").exists():
        out["sweep.csv"] = (parent / "sweep.csv").read_text()
    for f in sorted(parent.glob("*/summary.json")):
        out[str(f.relative_to(parent))] = strip_wall(json.loads(f.read_text()))
    for f in sorted(parent.glob("*/requests.jsonl")):
        out[str(f.relative_to(parent))] = [strip_wall(json.loads(x)) for x in f.read_text().splitlines() if x]
    for f in sorted(parent.glob("*/scenario.toml")):
        out[str(f.relative_to(parent))] = f.read_text()
    return out
