"""The validation framework: read typed values out of parsed TOML, reporting
`file:line: dotted.key: message` for every problem (Ctx), and keep going.

The parser walks the parsed TOML dict with a Ctx that knows the source lines, so
every problem is reported with its line. Readers return a default in place of a bad
value, so one run of `loadgen validate` lists everything that is wrong, not just the
first thing.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from typing import Any, Mapping

from loadgen.scenario.toml_lines import line_of
from loadgen.scenario.units import DURATION_HINT, RATE_HINT, parse_duration, parse_rate

MISSING: Any = object()


def dotted(path: tuple) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p)
            out += ("." if out else "") + part
    return out


def type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def near_hint(value: str, choices: tuple[str, ...] | list[str]) -> str:
    """"; did you mean 'x'?" for the closest of `choices` to a mistyped `value`, else ""."""
    near = difflib.get_close_matches(value, choices, n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def unknown_key(key: str, allowed: tuple[str, ...]) -> str:
    """The message for a key that is not one of `allowed`: a did-you-mean, else the list.
    Also used by the emulator's [emulator] checks, so every table of a scenario says it alike."""
    hint = near_hint(key, allowed)
    return f"unknown key{hint}" if hint else f"unknown key; expected one of: {', '.join(allowed)}"


class Ctx:
    """Where we are: the file, its key lines, and the problems found so far."""

    def __init__(self, path: str, lines: dict) -> None:
        self.path = path
        self.base_dir = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
        self.lines = lines
        self.problems: list[tuple[int, str]] = []
        self.warnings: list[tuple[int, str]] = []

    def line(self, path: tuple) -> int:
        return line_of(self.lines, path)

    def where(self, path: tuple) -> str:
        return f"{self.path}:{self.line(path)}" + (f": {dotted(path)}" if path else "")

    def err(self, path: tuple, msg: str) -> None:
        self.problems.append((self.line(path), f"{self.where(path)}: {msg}"))

    def err_at(self, file: str, line: int, key: str, msg: str) -> None:
        """A problem inside another file (a trace or empirical data file)."""
        self.problems.append((10**9, f"{file}:{line}: {key}: {msg}"))

    def warn(self, path: tuple, msg: str) -> None:
        self.warnings.append((self.line(path), f"{self.where(path)}: {msg}"))

    def file(self, name: str) -> str:
        return name if os.path.isabs(name) else os.path.join(self.base_dir, name)

    # -- shape -------------------------------------------------------------

    def keys(self, tbl: Mapping[str, Any], path: tuple, allowed: tuple[str, ...],
             elsewhere: Mapping[str, str] | None = None) -> None:
        """Unknown keys, with a did-you-mean; `elsewhere` explains keys valid in another context."""
        for k in tbl:
            if k in allowed:
                continue
            if elsewhere and k in elsewhere:
                self.err(path + (k,), elsewhere[k])
                continue
            self.err(path + (k,), unknown_key(k, allowed))

    def table(self, parent: Mapping[str, Any], path: tuple, key: str, *, required: bool = False) -> dict | None:
        v = parent.get(key, MISSING)
        if v is MISSING:
            if required:
                self.err(path + (key,), f"missing; expected a [{dotted(path + (key,))}] table")
            return None
        if not isinstance(v, dict):
            self.err(path + (key,), f"expected a table, got {type_name(v)}")
            return None
        return v

    # -- scalars (return `default` after reporting a problem) ------------------

    def _get(self, tbl: Mapping[str, Any], path: tuple, key: str, default: Any, what: str) -> Any:
        v = tbl.get(key, MISSING)
        if v is MISSING and default is MISSING:
            self.err(path + (key,), f"missing; expected {what}")
        return v

    def str_(self, tbl, path, key, default: Any = MISSING, *, choices: tuple[str, ...] = (),
             what: str = "a string") -> Any:
        if choices:
            what = "one of " + ", ".join(f'"{c}"' for c in choices)
        v = self._get(tbl, path, key, default, what)
        if v is MISSING:
            return None if default is MISSING else default
        if not isinstance(v, str):
            self.err(path + (key,), f"expected {what}, got {type_name(v)} {v!r}")
            return None if default is MISSING else default
        if choices and v not in choices:
            self.err(path + (key,), f"expected {what}, got {v!r}{near_hint(v, choices)}")
            return None if default is MISSING else default
        return v

    def int_(self, tbl, path, key, default: Any = MISSING, *, minimum: int | None = None) -> Any:
        what = "a whole number" + (f" >= {minimum}" if minimum is not None else "")
        v = self._get(tbl, path, key, default, what)
        if v is MISSING:
            return None if default is MISSING else default
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(path + (key,), f"expected {what}, got {type_name(v)} {v!r}")
            return None if default is MISSING else default
        if minimum is not None and v < minimum:
            self.err(path + (key,), f"expected {what}, got {v}")
            return None if default is MISSING else default
        return v

    def num(self, tbl, path, key, default: Any = MISSING, *, low: float | None = None,
            low_open: bool = False, high: float | None = None) -> Any:
        what = "a number"
        if low is not None:
            what += f" {'>' if low_open else '>='} {low:g}"
        if high is not None:
            what += f"{' and' if low is not None else ''} <= {high:g}"
        v = self._get(tbl, path, key, default, what)
        if v is MISSING:
            return None if default is MISSING else default
        if not is_number(v) or not math.isfinite(v):
            self.err(path + (key,), f"expected {what}, got {type_name(v)} {v!r}")
            return None if default is MISSING else default
        if (low is not None and (v <= low if low_open else v < low)) or (high is not None and v > high):
            self.err(path + (key,), f"expected {what}, got {v!r}")
            return None if default is MISSING else default
        return float(v)

    def bool_(self, tbl, path, key, default: Any = MISSING) -> Any:
        v = self._get(tbl, path, key, default, "true or false")
        if v is MISSING:
            return None if default is MISSING else default
        if not isinstance(v, bool):
            self.err(path + (key,), f"expected true or false, got {type_name(v)} {v!r}")
            return None if default is MISSING else default
        return v

    def duration(self, tbl, path, key, default: Any = MISSING, *, allow_zero: bool = False) -> Any:
        v = self._get(tbl, path, key, default, DURATION_HINT)
        if v is MISSING:
            return None if default is MISSING else default
        return self.duration_value(v, path + (key,), default, allow_zero=allow_zero)

    def duration_value(self, v: object, path: tuple, default: Any = None, *, allow_zero: bool = False) -> Any:
        try:
            s = parse_duration(v)
        except ValueError as e:
            self.err(path, str(e))
            return None if default is MISSING else default
        if s == 0 and not allow_zero:
            self.err(path, f"must be longer than zero, got {v!r}")
            return None if default is MISSING else default
        return s

    def rate(self, tbl, path, key, default: Any = MISSING, *, allow_zero: bool = False) -> Any:
        v = self._get(tbl, path, key, default, RATE_HINT)
        if v is MISSING:
            return None if default is MISSING else default
        try:
            r = parse_rate(v)
        except ValueError as e:
            self.err(path + (key,), str(e))
            return None if default is MISSING else default
        if r == 0 and not allow_zero:
            self.err(path + (key,), f"must be above zero, got {v!r}")
            return None if default is MISSING else default
        return r



def read_kind(ctx: Ctx, value: dict, path: tuple, key: str, fields: Mapping[str, tuple[str, ...]]) -> str | None:
    """The table's kind (`dist` or `kind`), with its keys checked against that kind's fields;
    a field of another kind gets a message saying which fields this kind takes."""
    kind = ctx.str_(value, path, key, choices=tuple(fields))
    if kind is None:
        return None
    allowed = (key,) + fields[kind]
    others = {k: f"not used by {key} = \"{kind}\" (it takes: {', '.join(fields[kind])})"
              for fs in fields.values() for k in fs if k not in allowed}
    ctx.keys(value, path, allowed, others)
    return kind

