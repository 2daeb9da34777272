"""Data files a scenario points to: empirical numbers (one per line, or a CSV column)
and request traces (CSV or JSONL). Problems are reported at the data file's own line."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Mapping

from loadgen.scenario.arrivals import TracePoint
from loadgen.scenario.fields import Ctx

def read_numbers(ctx: Ctx, path: tuple, name: str, column: str | None) -> tuple[float, ...] | None:
    """The numbers of an empirical data file (see numbers_file); `path` is its `file` key."""
    full = ctx.file(name)
    try:
        with open(full, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        ctx.err(path, f"cannot read empirical data file {full}: {e.strerror or e} "
                      f"(paths are relative to the scenario file)")
        return None
    vals = numbers_file(ctx, full, text, column)
    if vals is None:
        return None
    if not vals:
        ctx.err(path, f"{full} holds no numbers; expected one number per line (or a CSV column)")
        return None
    return tuple(vals)


def numbers_file(ctx: Ctx, full: str, text: str, column: str | None) -> list[float] | None:
    """One number per line, or a CSV whose header names `column` (default: its first column).

    Numbers are tokens, or seconds for time distributions. Blank lines and # comments are skipped.
    """
    rows = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()
            and not line.lstrip().startswith("#")]
    if not rows:
        return []
    first = rows[0][1]
    col = 0
    if not _looks_numeric(first.split(",")[0]):
        header = [h.strip() for h in first.split(",")]
        if column is None:
            col = 0
        elif column in header:
            col = header.index(column)
        else:
            ctx.err_at(full, rows[0][0], "column", f"no column {column!r} in header {header}")
            return None
        rows = rows[1:]
    elif column is not None:
        ctx.err_at(full, rows[0][0], "column", f"column = {column!r} was given but the file has no header line")
        return None
    out, bad = [], False
    for n, line in rows:
        cells = line.split(",")
        cell = cells[col].strip() if col < len(cells) else ""
        try:
            x = float(cell)
            if not math.isfinite(x) or x < 0:
                raise ValueError
        except ValueError:
            ctx.err_at(full, n, "value", f"expected a number >= 0, got {cell!r}")
            bad = True
            continue
        out.append(x)
    return None if bad else out


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def trace_file(ctx: Ctx, path: tuple, full: str, scale: float) -> tuple[TracePoint, ...] | None:
    """CSV (header `offset`[, input_tokens, output_tokens]) or JSONL (.jsonl/.ndjson) with those keys.

    Offsets are seconds from run start in the file; replay divides them by `scale`
    (time_scale = 2 replays twice as fast).
    """
    try:
        with open(full, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        ctx.err(path, f"cannot read trace file {full}: {e.strerror or e} (paths are relative to the scenario file)")
        return None
    rows: list[tuple[int, Mapping[str, Any]]] = []
    if full.endswith((".jsonl", ".ndjson")):
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                ctx.err_at(full, n, "line", f"expected one JSON object per line: {e}")
                return None
            if not isinstance(obj, dict):
                ctx.err_at(full, n, "line", f"expected a JSON object, got {obj!r}")
                return None
            rows.append((n, obj))
    else:
        reader = csv.DictReader(io.StringIO(text))
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "offset" not in header:
            ctx.err_at(full, 1, "offset", f"expected a CSV header with an `offset` column (seconds), "
                                          f"got {header or 'an empty file'}")
            return None
        reader.fieldnames = header
        for rec in reader:
            rows.append((reader.line_num, {k: (v.strip() if isinstance(v, str) else v) for k, v in rec.items()
                                           if v not in (None, "")}))
    points, bad = [], False
    for n, rec in rows:
        try:
            offset = float(rec["offset"])
            if not math.isfinite(offset) or offset < 0:
                raise ValueError
        except (KeyError, ValueError, TypeError):
            ctx.err_at(full, n, "offset", f"expected a number of seconds >= 0, got {rec.get('offset')!r}")
            bad = True
            continue
        toks = {}
        for key in ("input_tokens", "output_tokens"):
            v = rec.get(key)
            if v is None:
                toks[key] = None
                continue
            try:
                iv = int(v) if not isinstance(v, float) or v.is_integer() else -1
                if isinstance(v, bool) or iv < 1:
                    raise ValueError
            except (ValueError, TypeError):
                ctx.err_at(full, n, key, f"expected a whole number of tokens >= 1, got {v!r}")
                bad = True
                continue
            toks[key] = iv
        points.append(TracePoint(offset / scale, toks.get("input_tokens"), toks.get("output_tokens")))
    if bad:
        return None
    if not points:
        ctx.err(path, f"trace file {full} has no requests")
        return None
    return tuple(sorted(points, key=lambda p: p.offset))


