"""The traffic shape: gap and size distributions and open-loop arrival processes,
read from their TOML tables into arrivals.Dist / arrivals.OpenLoop."""

from __future__ import annotations

import math

from loadgen.scenario.arrivals import Dist, OpenLoop, Stage
from loadgen.scenario.datafiles import numbers_file, trace_file
from loadgen.scenario.fields import MISSING, Ctx, is_number, read_kind, type_name
from loadgen.scenario.units import format_duration

DIST_FIELDS = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "lognormal": ("median", "p90"),
    "empirical": ("values", "file", "column"),
}
PROCESS_FIELDS = {
    "constant": ("rate",),
    "poisson": ("rate",),
    "stages": ("start_rate", "stages"),
    "bursts": ("every", "size", "spread", "rate"),
    "trace": ("file", "time_scale"),
}


# --------------------------------------------------------------------------- distributions

def read_dist(ctx: Ctx, value: object, path: tuple, unit: str) -> Dist | None:
    """A gap or size distribution. unit: "tokens" (numbers) or "seconds" (duration strings)."""
    tokens = unit == "tokens"
    if tokens and is_number(value):
        if not isinstance(value, int) or value < 1:
            ctx.err(path, f"expected a whole number of tokens >= 1 or a distribution table, got {value!r}")
            return None
        return Dist("constant", value=float(value))
    if not tokens and isinstance(value, str):
        s = ctx.duration_value(value, path)
        return None if s is None else Dist("constant", value=s)
    if not isinstance(value, dict):
        example = ("300 or { dist = \"lognormal\", median = 300, p90 = 1200 }" if tokens
                   else "\"30s\" or { dist = \"lognormal\", median = \"3m\", p90 = \"15m\" }")
        ctx.err(path, f"expected {example}, got {type_name(value)} {value!r}")
        return None
    kind = read_kind(ctx, value, path, "dist", DIST_FIELDS)
    if kind is None:
        return None

    def field_(key: str, *, zero_ok: bool = False) -> float | None:
        v = value.get(key, MISSING)
        if v is MISSING:
            ctx.err(path + (key,), f"missing; dist = \"{kind}\" needs {', '.join(DIST_FIELDS[kind])}")
            return None
        return _dist_number(ctx, v, path + (key,), unit, zero_ok=zero_ok)

    if kind == "constant":
        v = field_("value")
        return None if v is None else Dist(kind, value=v)
    if kind == "uniform":
        low, high = field_("low", zero_ok=True), field_("high")
        if low is None or high is None:
            return None
        if low > high:
            ctx.err(path + ("low",), f"uniform low ({_show(low, unit)}) is above high ({_show(high, unit)})")
            return None
        return Dist(kind, low=low, high=high)
    if kind == "exponential":
        mean = field_("mean")
        return None if mean is None else Dist(kind, mean=mean)
    if kind == "lognormal":
        median, p90 = field_("median"), field_("p90")
        if median is None or p90 is None:
            return None
        if p90 <= median:
            ctx.err(path + ("p90",), f"p90 ({_show(p90, unit)}) must be above the median "
                                     f"({_show(median, unit)}): 90 % of draws fall below p90")
            return None
        return Dist(kind, median=median, p90=p90)
    return _empirical(ctx, value, path, unit)


def _dist_number(ctx: Ctx, v: object, path: tuple, unit: str, *, zero_ok: bool = False) -> float | None:
    if unit == "seconds":
        return ctx.duration_value(v, path, allow_zero=zero_ok)
    if not is_number(v) or not math.isfinite(v):
        ctx.err(path, f"expected a number of tokens, got {type_name(v)} {v!r}")
        return None
    if v < 0 or (v == 0 and not zero_ok):
        ctx.err(path, f"expected a number of tokens {'>= 0' if zero_ok else '> 0'}, got {v!r}")
        return None
    return float(v)


def _show(x: float, unit: str) -> str:
    return format_duration(x) if unit == "seconds" else f"{x:g}"


def _empirical(ctx: Ctx, value: dict, path: tuple, unit: str) -> Dist | None:
    has_values, has_file = "values" in value, "file" in value
    if has_values == has_file:
        ctx.err(path, "empirical needs exactly one of values = [...] or file = \"path\"")
        return None
    if has_values:
        vals = value["values"]
        if not isinstance(vals, list) or not vals:
            ctx.err(path + ("values",), f"expected a non-empty array, got {vals!r}")
            return None
        out = [_dist_number(ctx, v, path + ("values", i), unit, zero_ok=True) for i, v in enumerate(vals)]
        if any(v is None for v in out):
            return None
        return Dist("empirical", values=tuple(out))  # type: ignore[arg-type]
    name = ctx.str_(value, path, "file")
    column = ctx.str_(value, path, "column", None)
    if name is None:
        return None
    full = ctx.file(name)
    try:
        with open(full, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as e:
        ctx.err(path + ("file",), f"cannot read empirical data file {full}: {e.strerror or e} "
                                  f"(paths are relative to the scenario file)")
        return None
    vals = numbers_file(ctx, full, text, column)
    if vals is None:
        return None
    if not vals:
        ctx.err(path + ("file",), f"{full} holds no numbers; expected one number per line "
                                  "(or a CSV column)")
        return None
    return Dist("empirical", values=tuple(vals))


# --------------------------------------------------------------------------- arrival processes

def read_process(ctx: Ctx, value: object, path: tuple, *, header: bool) -> OpenLoop | None:
    """An open-loop process from a table ([arrivals]) or an inline table (sessions.arrival)."""
    if not isinstance(value, dict):
        ctx.err(path, f"expected {'a table' if header else 'an inline table'} like "
                      f'{{ kind = "poisson", rate = "20/s" }}, got {type_name(value)} {value!r}')
        return None
    kind = read_kind(ctx, value, path, "kind", PROCESS_FIELDS)
    if kind is None:
        return None
    if kind in ("constant", "poisson"):
        rate = ctx.rate(value, path, "rate")
        return None if rate is None else OpenLoop(kind, rate=rate)
    if kind == "stages":
        start = ctx.rate(value, path, "start_rate", 0.0, allow_zero=True)
        raw = value.get("stages", MISSING)
        if raw is MISSING or not isinstance(raw, list) or not raw:
            ctx.err(path + ("stages",), 'expected a non-empty array like [{ duration = "5m", target = "10/s" }, ...]'
                    + ("" if raw is MISSING else f", got {raw!r}"))
            return None
        stages, ok = [], True
        for i, st in enumerate(raw):
            sp = path + ("stages", i)
            if not isinstance(st, dict):
                ctx.err(sp, f'expected {{ duration = "5m", target = "10/s" }}, got {type_name(st)} {st!r}')
                ok = False
                continue
            ctx.keys(st, sp, ("duration", "target"))
            d = ctx.duration(st, sp, "duration")
            t = ctx.rate(st, sp, "target", allow_zero=True)
            if d is None or t is None:
                ok = False
                continue
            stages.append(Stage(duration=d, target=t))
        if not ok:
            return None
        if start == 0 and all(s.target == 0 for s in stages):
            ctx.err(path + ("stages",), "every rate is zero: no request would be sent")
            return None
        return OpenLoop(kind, start_rate=start, stages=tuple(stages))
    if kind == "bursts":
        every = ctx.duration(value, path, "every")
        size = ctx.int_(value, path, "size", minimum=1)
        spread = ctx.duration(value, path, "spread", 0.0, allow_zero=True)
        rate = ctx.rate(value, path, "rate", 0.0, allow_zero=True)
        if None in (every, size, spread, rate):
            return None
        return OpenLoop(kind, every=every, size=size, spread=spread, rate=rate)
    # trace
    name = ctx.str_(value, path, "file")
    scale = ctx.num(value, path, "time_scale", 1.0, low=0, low_open=True)
    if name is None or scale is None:
        return None
    points = trace_file(ctx, path + ("file",), ctx.file(name), scale)
    return None if points is None else OpenLoop(kind, points=points)


