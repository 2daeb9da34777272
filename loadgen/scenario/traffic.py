"""The traffic shape: gap and size distributions and open-loop arrival processes, read
from their TOML tables.

The kinds themselves (distributions.py, arrivals.py) say which keys they take and read
them through a TableReader; `_Table` is that reader over the parser's Ctx, so every
problem lands on its key's line in the scenario's own units.
"""

from __future__ import annotations

import math
from typing import Any

from loadgen.scenario.arrivals import PROCESSES, Process, Stage, TracePoint
from loadgen.scenario.datafiles import read_numbers, trace_file
from loadgen.scenario.distributions import DISTRIBUTIONS, Constant, Distribution
from loadgen.scenario.fields import MISSING, Ctx, is_number, read_kind, type_name
from loadgen.scenario.kinds import REQUIRED
from loadgen.scenario.units import format_duration

_DIST_KEYS = {kind: cls.keys for kind, cls in DISTRIBUTIONS.items()}
_PROCESS_KEYS = {kind: cls.keys for kind, cls in PROCESSES.items()}


def read_dist(ctx: Ctx, value: object, path: tuple, unit: str) -> Distribution | None:
    """A gap or size distribution. unit: "tokens" (numbers) or "seconds" (duration strings)."""
    tokens = unit == "tokens"
    if tokens and is_number(value):
        if not isinstance(value, int) or value < 1:
            ctx.err(path, f"expected a whole number of tokens >= 1 or a distribution table, got {value!r}")
            return None
        return Constant(float(value))
    if not tokens and isinstance(value, str):
        s = ctx.duration_value(value, path)
        return None if s is None else Constant(s)
    if not isinstance(value, dict):
        example = ("300 or { dist = \"lognormal\", median = 300, p90 = 1200 }" if tokens
                   else "\"30s\" or { dist = \"lognormal\", median = \"3m\", p90 = \"15m\" }")
        ctx.err(path, f"expected {example}, got {type_name(value)} {value!r}")
        return None
    kind = read_kind(ctx, value, path, "dist", _DIST_KEYS)
    if kind is None:
        return None
    return DISTRIBUTIONS[kind].read(_Table(ctx, value, path, f'dist = "{kind}"', _DIST_KEYS[kind], unit))


def read_process(ctx: Ctx, value: object, path: tuple, *, header: bool) -> Process | None:
    """An open-loop process from a table ([arrivals]) or an inline table (sessions.arrival)."""
    if not isinstance(value, dict):
        ctx.err(path, f"expected {'a table' if header else 'an inline table'} like "
                      f'{{ kind = "poisson", rate = "20/s" }}, got {type_name(value)} {value!r}')
        return None
    kind = read_kind(ctx, value, path, "kind", _PROCESS_KEYS)
    if kind is None:
        return None
    return PROCESSES[kind].read(_Table(ctx, value, path, f'kind = "{kind}"', _PROCESS_KEYS[kind], "seconds"))


class _Table:
    """A kind's table read through the Ctx (the TableReader of kinds.py)."""

    def __init__(self, ctx: Ctx, table: dict, path: tuple, kind: str, keys: tuple[str, ...], unit: str) -> None:
        self.ctx, self.table, self.path, self.kind, self.keys, self.unit = ctx, table, path, kind, keys, unit

    def _default(self, default: Any) -> Any:
        return MISSING if default is REQUIRED else default

    def rate(self, key: str, default: Any = REQUIRED, *, allow_zero: bool = False) -> float | None:
        return self.ctx.rate(self.table, self.path, key, self._default(default), allow_zero=allow_zero)

    def duration(self, key: str, default: Any = REQUIRED, *, allow_zero: bool = False) -> float | None:
        return self.ctx.duration(self.table, self.path, key, self._default(default), allow_zero=allow_zero)

    def count(self, key: str, *, minimum: int) -> int | None:
        return self.ctx.int_(self.table, self.path, key, minimum=minimum)

    def number(self, key: str, default: Any = REQUIRED, *, low: float, low_open: bool) -> float | None:
        return self.ctx.num(self.table, self.path, key, self._default(default), low=low, low_open=low_open)

    def amount(self, key: str, *, zero_ok: bool) -> float | None:
        v = self.table.get(key, MISSING)
        if v is MISSING:
            self.ctx.err(self.path + (key,), f"missing; {self.kind} needs {', '.join(self.keys)}")
            return None
        return self._amount(v, self.path + (key,), zero_ok=zero_ok)

    def _amount(self, v: object, path: tuple, *, zero_ok: bool) -> float | None:
        if self.unit == "seconds":
            return self.ctx.duration_value(v, path, allow_zero=zero_ok)
        if not is_number(v) or not math.isfinite(v):
            self.ctx.err(path, f"expected a number of tokens, got {type_name(v)} {v!r}")
            return None
        if v < 0 or (v == 0 and not zero_ok):
            self.ctx.err(path, f"expected a number of tokens {'>= 0' if zero_ok else '> 0'}, got {v!r}")
            return None
        return float(v)

    def amounts(self, key: str) -> tuple[float, ...] | None:
        vals = self.table[key]
        if not isinstance(vals, list) or not vals:
            self.ctx.err(self.path + (key,), f"expected a non-empty array, got {vals!r}")
            return None
        out = [self._amount(v, self.path + (key, i), zero_ok=True) for i, v in enumerate(vals)]
        return None if any(v is None for v in out) else tuple(out)  # type: ignore[arg-type]

    def numbers_file(self, key: str, column_key: str) -> tuple[float, ...] | None:
        name = self.ctx.str_(self.table, self.path, key)
        column = self.ctx.str_(self.table, self.path, column_key, None)
        return None if name is None else read_numbers(self.ctx, self.path + (key,), name, column)

    def stages(self, key: str) -> tuple[Stage, ...] | None:
        raw = self.table.get(key, MISSING)
        if raw is MISSING or not isinstance(raw, list) or not raw:
            self.ctx.err(self.path + (key,), 'expected a non-empty array like [{ duration = "5m", target = "10/s" }, ...]'
                         + ("" if raw is MISSING else f", got {raw!r}"))
            return None
        stages, ok = [], True
        for i, st in enumerate(raw):
            sp = self.path + (key, i)
            if not isinstance(st, dict):
                self.ctx.err(sp, f'expected {{ duration = "5m", target = "10/s" }}, got {type_name(st)} {st!r}')
                ok = False
                continue
            self.ctx.keys(st, sp, ("duration", "target"))
            d = self.ctx.duration(st, sp, "duration")
            t = self.ctx.rate(st, sp, "target", allow_zero=True)
            if d is None or t is None:
                ok = False
                continue
            stages.append(Stage(duration=d, target=t))
        return tuple(stages) if ok else None

    def trace(self, key: str, time_scale: float | None) -> tuple[TracePoint, ...] | None:
        name = self.ctx.str_(self.table, self.path, key)
        if name is None or time_scale is None:
            return None
        return trace_file(self.ctx, self.path + (key,), self.ctx.file(name), time_scale)

    def has(self, key: str) -> bool:
        return key in self.table

    def problem(self, key: str, message: str) -> None:
        self.ctx.err(self.path + ((key,) if key else ()), message)

    def show(self, x: float) -> str:
        return format_duration(x) if self.unit == "seconds" else f"{x:g}"
