"""Scenario files: TOML -> frozen, typed dataclasses.

Units after parsing: durations in seconds (float), rates in events per second
(float), token counts as int, prices in USD per 1M tokens.
Every error is a ScenarioError carrying `file:line: key: message`.

The dataclasses below are the contract other modules build on; `load()` fills
them. The keys, their units and defaults are documented in README.md (section "Scenario reference").
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from loadgen.catalog import pricing

from loadgen.scenario import thresholds
from loadgen._toml import toml
from loadgen.scenario.arrivals import Dist, OpenLoop, Stage, TracePoint
from loadgen.catalog.models import ModelInfo, UnknownModel, lookup
from loadgen.catalog.profiles import KINDS, kind_of, split, with_profile, region_problem
from loadgen.scenario.toml_lines import deep_line, key_lines, line_of, nesting_depth, syntax_error
from loadgen.scenario.units import DURATION_HINT, RATE_HINT, format_duration, parse_duration, parse_rate


class ScenarioError(Exception):
    """One or more problems in a scenario file; str() is one `file:line: key: message` per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Target:
    kind: str = "emulator"          # "emulator" | "aws"
    region: str = "us-east-1"
    time_scale: float = 1.0         # warp clock scale (emulator only; aws is always 1)
    endpoint_url: str | None = None # aws only: a non-default endpoint (e.g. a local emulator)
    max_in_flight: int = 64         # bound on concurrent requests, per arm
    request_timeout: float = 120.0  # seconds (scenario time) before an attempt is a timeout


@dataclass(frozen=True)
class Model:
    id: str
    max_tokens: int = 512           # tokens; when omitted, the model's maximum output
    max_tokens_set: bool = True     # False: [model] max_tokens omitted, requests omit maxTokens
    stream: bool = True
    temperature: float | None = None


@dataclass(frozen=True)
class Workload:
    kind: str                       # "single" | "agent"
    prefix_tokens: int              # byte-stable cached part (system prompt + tools)
    output_tokens: Dist             # tokens the emulator is asked to produce (hint, see workload.py)
    question_tokens: Dist | None = None   # single: the varying part below the checkpoint
    turn_tokens: Dist | None = None       # agent: new user-turn size
    turns_min: int = 1                    # agent: turns per session, uniform in [min, max]
    turns_max: int = 1
    checkpoint_pattern: str = "kept"      # agent: "kept" | "moving" (workload.py)


@dataclass(frozen=True)
class Sessions:
    arrival: OpenLoop               # when sessions start
    think_time: Dist                # gap (seconds) between a turn's end and the next turn's start


@dataclass(frozen=True)
class Retry:
    policy: str = "off"             # "off" | "fixed" | "exponential"
    max_attempts: int = 1           # attempts in all, including the first
    base: float = 1.0               # seconds: fixed delay, or exponential base
    cap: float = 30.0               # seconds: exponential ceiling
    jitter: bool = True             # full jitter for exponential
    on: tuple[str, ...] = ("throttled", "5xx")   # what is retried: throttled, 5xx, timeout


@dataclass(frozen=True)
class Arm:
    name: str
    model_id: str                   # final id after applying `profile` (e.g. "us.anthropic...")
    profile: str                    # "region" | "geo" | "global"
    cache: bool = True
    cache_ttl: str = "5m"           # "5m" | "1h"
    stream: bool = True
    max_tokens: int = 512           # tokens Bedrock reserves per request (the model's maximum if omitted)
    temperature: float | None = None
    service_tier: str | None = None
    max_tokens_set: bool = True     # False: requests omit maxTokens, as a client without it would


@dataclass(frozen=True)
class Threshold:
    expr: str                       # e.g. "p99(ttft) < 2s"
    arm: str | None = None          # None = every arm
    line: int = 0


@dataclass(frozen=True)
class PriceOverride:
    model_id: str                   # any id form; the profile prefix selects the row
    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    duration: float                 # scenario seconds
    target: Target
    model: Model
    workload: Workload
    arms: tuple[Arm, ...]
    arrivals: OpenLoop | None = None    # open loop (single-turn); exactly one of arrivals/sessions
    sessions: Sessions | None = None    # closed-loop agent sessions
    retry: Retry = field(default_factory=Retry)
    thresholds: tuple[Threshold, ...] = ()
    pricing: tuple[PriceOverride, ...] = ()
    emulator: Mapping[str, Any] = field(default_factory=dict)   # passed to the emulator as-is
    description: str = ""
    path: str = ""                  # the file it was read from
    source: str = ""                # the file's exact text (copied into results)
    warnings: tuple[str, ...] = ()  # `file:line: key: message` lines that do not stop a run


# =========================================================================== parser
#
# The parser walks the parsed TOML dict with a _Ctx that knows the source lines, so
# every problem is reported as `file:line: dotted.key: message`. It keeps going after
# a problem (using a default in its place) so one run of `loadgen validate` lists
# everything that is wrong, not just the first thing.

_MISSING: Any = object()

TOP_KEYS = ("name", "seed", "duration", "description", "target", "model", "workload", "arrivals",
            "sessions", "retry", "arms", "thresholds", "pricing", "emulator")
TARGET_KEYS = ("kind", "region", "time_scale", "endpoint_url", "max_in_flight", "request_timeout")
MODEL_KEYS = ("id", "max_tokens", "stream", "temperature")
WORKLOAD_KEYS = ("kind", "prefix_tokens", "question_tokens", "turn_tokens", "output_tokens", "turns",
                 "checkpoint_pattern")
CHECKPOINT_PATTERNS = ("kept", "moving")
SESSIONS_KEYS = ("arrival", "think_time")
RETRY_KEYS = ("policy", "max_attempts", "base", "cap", "jitter", "on")
ARM_KEYS = ("name", "model", "profile", "cache", "cache_ttl", "stream", "max_tokens", "temperature",
            "service_tier")
PRICE_KEYS = ("input_per_mtok", "output_per_mtok")
TTL_CHOICES = ("5m", "1h")
SERVICE_TIERS = ("priority", "default", "flex", "reserved")
RETRY_ON = ("throttled", "5xx", "timeout")

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

# Arm and scenario names become parts of file and directory names (results/<name>-<time>/,
# histograms/<arm>.<metric>.hlog) and of cache keys: keep them plain ASCII, starting with
# a letter or digit (a leading '-' would read as an option to every shell tool), and short
# (file names stop at 255 bytes on common file systems; the timestamp suffix needs ~20).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_MAX_CHARS = 100
NAME_RULE = "ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"

# Tables and arrays inside each other: the deepest a valid scenario goes is about 4
# (thresholds.arms.<arm>[i], emulator tables); far deeper input is an accident or an attack
# and would exhaust Python's recursion limit in the parser.
MAX_NESTING = 16

# The warp clock's fastest useful speed. asyncio waits in epoll_wait, which counts whole
# milliseconds (CPython Lib/selectors.py rounds a timeout up to 1 ms), and one loopback HTTP
# round trip takes about as long; at x1000 that millisecond is a full second of scenario
# time, already above the emulator's median modelled TTFT (0.6 s, loadgen/catalog/data/emulator.toml).
MAX_TIME_SCALE = 1000.0


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p)
            out += ("." if out else "") + part
    return out


def _kind(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _is_num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Ctx:
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
        return f"{self.path}:{self.line(path)}" + (f": {_dotted(path)}" if path else "")

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
            near = difflib.get_close_matches(k, allowed, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"expected one of: {', '.join(allowed)}"
            self.err(path + (k,), f"unknown key; {hint}")

    def table(self, parent: Mapping[str, Any], path: tuple, key: str, *, required: bool = False) -> dict | None:
        v = parent.get(key, _MISSING)
        if v is _MISSING:
            if required:
                self.err(path + (key,), f"missing; expected a [{_dotted(path + (key,))}] table")
            return None
        if not isinstance(v, dict):
            self.err(path + (key,), f"expected a table, got {_kind(v)}")
            return None
        return v

    # -- scalars (return `default` after reporting a problem) ------------------

    def _get(self, tbl: Mapping[str, Any], path: tuple, key: str, default: Any, what: str) -> Any:
        v = tbl.get(key, _MISSING)
        if v is _MISSING and default is _MISSING:
            self.err(path + (key,), f"missing; expected {what}")
        return v

    def str_(self, tbl, path, key, default: Any = _MISSING, *, choices: tuple[str, ...] = (),
             what: str = "a string") -> Any:
        if choices:
            what = "one of " + ", ".join(f'"{c}"' for c in choices)
        v = self._get(tbl, path, key, default, what)
        if v is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(v, str):
            self.err(path + (key,), f"expected {what}, got {_kind(v)} {v!r}")
            return None if default is _MISSING else default
        if choices and v not in choices:
            near = difflib.get_close_matches(v, choices, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            self.err(path + (key,), f"expected {what}, got {v!r}{hint}")
            return None if default is _MISSING else default
        return v

    def int_(self, tbl, path, key, default: Any = _MISSING, *, minimum: int | None = None) -> Any:
        what = "a whole number" + (f" >= {minimum}" if minimum is not None else "")
        v = self._get(tbl, path, key, default, what)
        if v is _MISSING:
            return None if default is _MISSING else default
        if isinstance(v, bool) or not isinstance(v, int):
            self.err(path + (key,), f"expected {what}, got {_kind(v)} {v!r}")
            return None if default is _MISSING else default
        if minimum is not None and v < minimum:
            self.err(path + (key,), f"expected {what}, got {v}")
            return None if default is _MISSING else default
        return v

    def num(self, tbl, path, key, default: Any = _MISSING, *, low: float | None = None,
            low_open: bool = False, high: float | None = None) -> Any:
        what = "a number"
        if low is not None:
            what += f" {'>' if low_open else '>='} {low:g}"
        if high is not None:
            what += f"{' and' if low is not None else ''} <= {high:g}"
        v = self._get(tbl, path, key, default, what)
        if v is _MISSING:
            return None if default is _MISSING else default
        if not _is_num(v) or not math.isfinite(v):
            self.err(path + (key,), f"expected {what}, got {_kind(v)} {v!r}")
            return None if default is _MISSING else default
        if (low is not None and (v <= low if low_open else v < low)) or (high is not None and v > high):
            self.err(path + (key,), f"expected {what}, got {v!r}")
            return None if default is _MISSING else default
        return float(v)

    def bool_(self, tbl, path, key, default: Any = _MISSING) -> Any:
        v = self._get(tbl, path, key, default, "true or false")
        if v is _MISSING:
            return None if default is _MISSING else default
        if not isinstance(v, bool):
            self.err(path + (key,), f"expected true or false, got {_kind(v)} {v!r}")
            return None if default is _MISSING else default
        return v

    def duration(self, tbl, path, key, default: Any = _MISSING, *, allow_zero: bool = False) -> Any:
        v = self._get(tbl, path, key, default, DURATION_HINT)
        if v is _MISSING:
            return None if default is _MISSING else default
        return self.duration_value(v, path + (key,), default, allow_zero=allow_zero)

    def duration_value(self, v: object, path: tuple, default: Any = None, *, allow_zero: bool = False) -> Any:
        try:
            s = parse_duration(v)
        except ValueError as e:
            self.err(path, str(e))
            return None if default is _MISSING else default
        if s == 0 and not allow_zero:
            self.err(path, f"must be longer than zero, got {v!r}")
            return None if default is _MISSING else default
        return s

    def rate(self, tbl, path, key, default: Any = _MISSING, *, allow_zero: bool = False) -> Any:
        v = self._get(tbl, path, key, default, RATE_HINT)
        if v is _MISSING:
            return None if default is _MISSING else default
        try:
            r = parse_rate(v)
        except ValueError as e:
            self.err(path + (key,), str(e))
            return None if default is _MISSING else default
        if r == 0 and not allow_zero:
            self.err(path + (key,), f"must be above zero, got {v!r}")
            return None if default is _MISSING else default
        return r


# --------------------------------------------------------------------------- distributions

def _dist(ctx: _Ctx, value: object, path: tuple, unit: str) -> Dist | None:
    """A gap or size distribution. unit: "tokens" (numbers) or "seconds" (duration strings)."""
    tokens = unit == "tokens"
    if tokens and _is_num(value):
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
        ctx.err(path, f"expected {example}, got {_kind(value)} {value!r}")
        return None
    kind = _kind_of(ctx, value, path, "dist", DIST_FIELDS)
    if kind is None:
        return None

    def field_(key: str, *, zero_ok: bool = False) -> float | None:
        v = value.get(key, _MISSING)
        if v is _MISSING:
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


def _dist_number(ctx: _Ctx, v: object, path: tuple, unit: str, *, zero_ok: bool = False) -> float | None:
    if unit == "seconds":
        return ctx.duration_value(v, path, allow_zero=zero_ok)
    if not _is_num(v) or not math.isfinite(v):
        ctx.err(path, f"expected a number of tokens, got {_kind(v)} {v!r}")
        return None
    if v < 0 or (v == 0 and not zero_ok):
        ctx.err(path, f"expected a number of tokens {'>= 0' if zero_ok else '> 0'}, got {v!r}")
        return None
    return float(v)


def _show(x: float, unit: str) -> str:
    return format_duration(x) if unit == "seconds" else f"{x:g}"


def _empirical(ctx: _Ctx, value: dict, path: tuple, unit: str) -> Dist | None:
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
    vals = _numbers_file(ctx, full, text, column)
    if vals is None:
        return None
    if not vals:
        ctx.err(path + ("file",), f"{full} holds no numbers; expected one number per line "
                                  "(or a CSV column)")
        return None
    return Dist("empirical", values=tuple(vals))


def _numbers_file(ctx: _Ctx, full: str, text: str, column: str | None) -> list[float] | None:
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


def _kind_of(ctx: _Ctx, value: dict, path: tuple, key: str, fields: Mapping[str, tuple[str, ...]]) -> str | None:
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


# --------------------------------------------------------------------------- arrival processes

def _process(ctx: _Ctx, value: object, path: tuple, *, header: bool) -> OpenLoop | None:
    """An open-loop process from a table ([arrivals]) or an inline table (sessions.arrival)."""
    if not isinstance(value, dict):
        ctx.err(path, f"expected {'a table' if header else 'an inline table'} like "
                      f'{{ kind = "poisson", rate = "20/s" }}, got {_kind(value)} {value!r}')
        return None
    kind = _kind_of(ctx, value, path, "kind", PROCESS_FIELDS)
    if kind is None:
        return None
    if kind in ("constant", "poisson"):
        rate = ctx.rate(value, path, "rate")
        return None if rate is None else OpenLoop(kind, rate=rate)
    if kind == "stages":
        start = ctx.rate(value, path, "start_rate", 0.0, allow_zero=True)
        raw = value.get("stages", _MISSING)
        if raw is _MISSING or not isinstance(raw, list) or not raw:
            ctx.err(path + ("stages",), 'expected a non-empty array like [{ duration = "5m", target = "10/s" }, ...]'
                    + ("" if raw is _MISSING else f", got {raw!r}"))
            return None
        stages, ok = [], True
        for i, st in enumerate(raw):
            sp = path + ("stages", i)
            if not isinstance(st, dict):
                ctx.err(sp, f'expected {{ duration = "5m", target = "10/s" }}, got {_kind(st)} {st!r}')
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
    points = _trace_file(ctx, path + ("file",), ctx.file(name), scale)
    return None if points is None else OpenLoop(kind, points=points)


def _trace_file(ctx: _Ctx, path: tuple, full: str, scale: float) -> tuple[TracePoint, ...] | None:
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


# --------------------------------------------------------------------------- sections

def _target(ctx: _Ctx, raw: Mapping[str, Any]) -> Target:
    t = ctx.table(raw, (), "target")
    if t is None:
        return Target()
    p = ("target",)
    ctx.keys(t, p, TARGET_KEYS)
    d = Target()
    kind = ctx.str_(t, p, "kind", d.kind, choices=("emulator", "aws"))
    scale = ctx.num(t, p, "time_scale", d.time_scale, low=0, low_open=True)
    problem = time_scale_problem(scale) if scale is not None else None
    if problem:
        ctx.err(p + ("time_scale",), problem)
        scale = d.time_scale
    if kind == "aws" and scale != 1.0:
        ctx.err(p + ("time_scale",), "time_scale applies to the emulator target only; kind = \"aws\" "
                                     "always runs on the real clock (remove time_scale or set it to 1)")
    region = ctx.str_(t, p, "region", d.region)
    problem = region_problem(region) if region else 'expected a Region name like "us-east-1"'
    if problem:
        ctx.err(p + ("region",), problem)
        region = d.region
    return Target(
        kind=kind, region=region, time_scale=scale,
        endpoint_url=ctx.str_(t, p, "endpoint_url", d.endpoint_url),
        max_in_flight=ctx.int_(t, p, "max_in_flight", d.max_in_flight, minimum=1),
        request_timeout=_request_timeout(ctx, t, p, d.request_timeout),
    )


def _request_timeout(ctx: _Ctx, t: Mapping[str, Any], p: tuple, default: float) -> float:
    """At least 1 ms: the event loop cannot time anything shorter (epoll_wait counts whole
    milliseconds), so a shorter timeout would fail every request."""
    v = ctx.duration(t, p, "request_timeout", default)
    if v is not None and v < 0.001:
        ctx.err(p + ("request_timeout",), f"expected at least 1ms, got {t['request_timeout']!r}: the event "
                                          "loop cannot time anything shorter, so every request would time out")
        return default
    return default if v is None else v


def time_scale_problem(scale: float) -> str | None:
    """Why a warp-clock scale cannot give meaningful figures, or None (shared with --time-scale)."""
    if scale > MAX_TIME_SCALE:
        return (f"expected at most {MAX_TIME_SCALE:g}, got {scale:g}: the event loop times sleeps to ~1 ms "
                f"of real time, which at x{scale:g} is {scale / 1000:g} s of scenario time, so every modelled "
                f"latency (and the request timeout) would drown in clock granularity and transport overhead")
    return None


def _lookup_model(ctx: _Ctx, path: tuple, model_id: str) -> ModelInfo | None:
    try:
        return lookup(model_id)
    except UnknownModel as e:
        ctx.err(path, str(e))
        return None


def _check_profile(ctx: _Ctx, path: tuple, model_id: str, info: ModelInfo, region: str) -> None:
    """Does the profile in `model_id` exist for this model, called from `region`?"""
    kind, prefix, _ = split(model_id)
    if kind == "region" and not info.in_region_at(region):
        where = (f"; in-Region it is served only in {', '.join(info.in_region_regions)}"
                 if info.in_region_regions else "")
        exist = ", ".join(info.profiles_from(region)) or "none"
        ctx.err(path, f"{info.name} is not served on demand by its bare id in {region} (Bedrock answers "
                      f"400 ValidationException \"Invocation of model ID {model_id} with on-demand throughput "
                      f"isn\u2019t supported...\"){where}; use an inference profile that exists: {exist} "
                      f'(profile = "geo" or "global")')
    if kind == "geo" and prefix not in info.geo_profiles:
        ctx.err(path, f"{info.name} has no {prefix}. geographic inference profile "
                      f"(it has: {', '.join(p + '.' for p in info.geo_profiles) or 'none'}), so {model_id!r} "
                      f"does not exist")
    if kind == "global" and not info.global_profile:
        ctx.err(path, f"{info.name} has no global. inference profile, so {model_id!r} does not exist; "
                      f'use profile = "geo" or "region"')


def _check_max_tokens(ctx: _Ctx, path: tuple, value: int | None, info: ModelInfo | None) -> None:
    if value is not None and info is not None and value > info.max_output_tokens:
        ctx.err(path, f"max_tokens = {value} is above {info.name}'s limit of {info.max_output_tokens} "
                      f"output tokens")


def _model(ctx: _Ctx, raw: Mapping[str, Any]) -> tuple[Model, ModelInfo | None]:
    t = ctx.table(raw, (), "model", required=True)
    p = ("model",)
    if t is None:
        return Model(id=""), None
    ctx.keys(t, p, MODEL_KEYS)
    mid = ctx.str_(t, p, "id", what='a model id like "anthropic.claude-haiku-4-5-20251001-v1:0"')
    info = _lookup_model(ctx, p + ("id",), mid) if mid else None
    # Omitted: requests omit maxTokens and Bedrock reserves the model's maximum output
    # (botocore InferenceConfiguration.maxTokens); arms inherit that.
    max_tokens = ctx.int_(t, p, "max_tokens", info.max_output_tokens if info else 512, minimum=1)
    _check_max_tokens(ctx, p + ("max_tokens",), max_tokens, info)
    return Model(
        id=mid or "", max_tokens=max_tokens, max_tokens_set="max_tokens" in t,
        stream=ctx.bool_(t, p, "stream", True),
        temperature=ctx.num(t, p, "temperature", None, low=0, high=1),
    ), info


def _workload(ctx: _Ctx, raw: Mapping[str, Any]) -> Workload | None:
    t = ctx.table(raw, (), "workload", required=True)
    p = ("workload",)
    if t is None:
        return None
    kind = ctx.str_(t, p, "kind", choices=("single", "agent"))
    elsewhere = {}
    if kind == "single":
        elsewhere = {"turn_tokens": 'only for kind = "agent"; a single-turn workload uses question_tokens',
                     "turns": 'only for kind = "agent"; a single-turn workload has one turn',
                     "checkpoint_pattern": 'only for kind = "agent"; a single-turn workload has one '
                                           'checkpoint, after the system prompt'}
    elif kind == "agent":
        elsewhere = {"question_tokens": 'only for kind = "single"; an agent workload uses turn_tokens'}
    ctx.keys(t, p, tuple(k for k in WORKLOAD_KEYS if k not in elsewhere), elsewhere)
    prefix = ctx.int_(t, p, "prefix_tokens", minimum=1)
    out_raw = t.get("output_tokens", _MISSING)
    if out_raw is _MISSING:
        ctx.err(p + ("output_tokens",), 'missing; expected tokens to produce, e.g. 200 or '
                                        '{ dist = "lognormal", median = 200, p90 = 600 }')
        output = None
    else:
        output = _dist(ctx, out_raw, p + ("output_tokens",), "tokens")
    question = turn = None
    if kind == "single" and "question_tokens" in t:
        question = _dist(ctx, t["question_tokens"], p + ("question_tokens",), "tokens")
    if kind == "agent" and "turn_tokens" in t:
        turn = _dist(ctx, t["turn_tokens"], p + ("turn_tokens",), "tokens")
    if kind == "agent" and "turn_tokens" not in t:
        ctx.err(p + ("turn_tokens",), 'missing; an agent workload needs the size of each new user turn, '
                                      'e.g. { dist = "lognormal", median = 300, p90 = 1200 }')
    tmin = tmax = 1
    pattern = "kept"
    if kind == "agent":
        tmin, tmax = _turns(ctx, t, p)
        pattern = ctx.str_(t, p, "checkpoint_pattern", "kept", choices=CHECKPOINT_PATTERNS)
    if kind is None or prefix is None or output is None:
        return None
    return Workload(kind=kind, prefix_tokens=prefix, output_tokens=output, question_tokens=question,
                    turn_tokens=turn, turns_min=tmin, turns_max=tmax, checkpoint_pattern=pattern)


def _turns(ctx: _Ctx, t: Mapping[str, Any], p: tuple) -> tuple[int, int]:
    v = t.get("turns", _MISSING)
    tp = p + ("turns",)
    if v is _MISSING:
        ctx.err(tp, "missing; expected turns per session, e.g. { min = 5, max = 20 } or 10")
        return 1, 1
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            ctx.err(tp, f"expected at least 1 turn per session, got {v}")
            return 1, 1
        return v, v
    if not isinstance(v, dict):
        ctx.err(tp, f"expected {{ min = 5, max = 20 }} or a whole number, got {_kind(v)} {v!r}")
        return 1, 1
    ctx.keys(v, tp, ("min", "max"))
    lo = ctx.int_(v, tp, "min", minimum=1)
    hi = ctx.int_(v, tp, "max", minimum=1)
    if lo is None or hi is None:
        return 1, 1
    if lo > hi:
        ctx.err(tp + ("min",), f"turns min ({lo}) is above max ({hi})")
        return 1, 1
    return lo, hi


def _sessions(ctx: _Ctx, raw: Mapping[str, Any]) -> Sessions | None:
    t = ctx.table(raw, (), "sessions")
    if t is None:
        return None
    p = ("sessions",)
    ctx.keys(t, p, SESSIONS_KEYS)
    arrival = think = None
    if "arrival" not in t:
        ctx.err(p + ("arrival",), 'missing; expected when sessions start, e.g. { kind = "poisson", rate = "12/h" }')
    else:
        arrival = _process(ctx, t["arrival"], p + ("arrival",), header=False)
    if "think_time" not in t:
        ctx.err(p + ("think_time",), 'missing; expected the gap between turns, e.g. '
                                     '{ dist = "lognormal", median = "3m", p90 = "15m" }')
    else:
        think = _dist(ctx, t["think_time"], p + ("think_time",), "seconds")
    if arrival is None or think is None:
        return None
    return Sessions(arrival=arrival, think_time=think)


def _retry(ctx: _Ctx, raw: Mapping[str, Any]) -> Retry:
    t = ctx.table(raw, (), "retry")
    if t is None:
        return Retry()
    p = ("retry",)
    ctx.keys(t, p, RETRY_KEYS)
    d = Retry()
    policy = ctx.str_(t, p, "policy", "exponential" if "max_attempts" in t else d.policy,
                      choices=("off", "fixed", "exponential"))
    attempts = ctx.int_(t, p, "max_attempts", 1 if policy == "off" else 3, minimum=1)
    if policy == "off" and attempts > 1:
        ctx.err(p + ("max_attempts",), f'max_attempts = {attempts} with policy = "off": set policy = '
                                       '"fixed" or "exponential" to retry')
    base = ctx.duration(t, p, "base", d.base)
    cap = ctx.duration(t, p, "cap", d.cap)
    if base is not None and cap is not None and cap < base:
        ctx.err(p + ("cap",), f"cap ({format_duration(cap)}) is below base ({format_duration(base)})")
    on = t.get("on", _MISSING)
    on_t = d.on
    if on is not _MISSING:
        if not isinstance(on, list) or not all(isinstance(x, str) for x in on):
            ctx.err(p + ("on",), f"expected an array of {', '.join(RETRY_ON)}, got {on!r}")
        else:
            for i, x in enumerate(on):
                if x not in RETRY_ON:
                    near = difflib.get_close_matches(x, RETRY_ON, n=1)
                    ctx.err(p + ("on", i), f"expected one of {', '.join(RETRY_ON)}, got {x!r}"
                            + (f"; did you mean {near[0]!r}?" if near else ""))
            on_t = tuple(on)
    return Retry(policy=policy, max_attempts=attempts, base=base or d.base, cap=cap or d.cap,
                 jitter=ctx.bool_(t, p, "jitter", d.jitter), on=on_t)


def _arms(ctx: _Ctx, raw: Mapping[str, Any], model: Model, info: ModelInfo | None,
          target: Target) -> tuple[Arm, ...]:
    v = raw.get("arms", _MISSING)
    if v is _MISSING:
        items: list = [({}, ())]
    elif isinstance(v, dict):
        ctx.err(("arms",), "expected [[arms]] (an array of tables, double brackets), got a single [arms] table")
        return ()
    elif not isinstance(v, list) or not v or not all(isinstance(a, dict) for a in v):
        ctx.err(("arms",), "expected one or more [[arms]] tables")
        return ()
    else:
        items = [(a, ("arms", i)) for i, a in enumerate(v)]
    arms: list[Arm] = []
    seen: dict[str, int] = {}
    for a, p in items:
        if p:
            ctx.keys(a, p, ARM_KEYS)
            name = ctx.str_(a, p, "name", what='a name like "ttl-5m"')
            if name is not None and not _name_ok(ctx, p + ("name",), name):
                name = None
            if name in seen:
                ctx.err(p + ("name",), f"duplicate arm name {name!r} (first used on line {seen[name]})")
            elif name is not None:
                seen[name] = ctx.line(p + ("name",))
        else:
            name = "default"
        arm_model = ctx.str_(a, p, "model", None) if p else None
        mid, ainfo, id_path = model.id, info, ("model", "id")
        if arm_model is not None:
            mid, id_path = arm_model, p + ("model",)
            ainfo = _lookup_model(ctx, id_path, mid)
        profile = ctx.str_(a, p, "profile", None, choices=KINDS) if p else None
        if ainfo is not None:
            if profile is not None:
                try:
                    mid = with_profile(mid, profile, target.region)
                except ValueError as e:
                    ctx.err(p + ("profile",), f"{e} (target.region = {target.region!r})")
                    ainfo = None
                else:
                    id_path = p + ("profile",)
            else:
                profile = kind_of(mid)
            if ainfo is not None:
                _check_profile(ctx, id_path, mid, ainfo, target.region)
        cache = ctx.bool_(a, p, "cache", True) if p else True
        ttl = ctx.str_(a, p, "cache_ttl", "5m", choices=TTL_CHOICES) if p else "5m"
        if ainfo is not None and cache and not ainfo.caching:
            ctx.err(p + ("cache",) if p and "cache" in a else id_path,
                    f"{ainfo.name} offers no prompt caching on Bedrock (models.toml), so a cachePoint "
                    "would be refused; " + ("set cache = false on this arm" if p
                                             else "add an [[arms]] table with cache = false"))
        elif ainfo is not None and cache and ttl is not None and not ainfo.supports_ttl(ttl):
            ctx.err(p + ("cache_ttl",), f"{ainfo.name} does not support a {ttl} cache TTL (it supports: "
                                        f"{', '.join(ainfo.cache_ttls)}); the 1h TTL needs a Claude 4.5 model")
        max_set = bool(p) and "max_tokens" in a or model.max_tokens_set
        inherited = model.max_tokens if max_set or ainfo is None else ainfo.max_output_tokens
        max_tokens = ctx.int_(a, p, "max_tokens", inherited, minimum=1) if p else inherited
        if p and "max_tokens" in a or arm_model is not None:
            _check_max_tokens(ctx, p + ("max_tokens",) if "max_tokens" in a else id_path, max_tokens, ainfo)
        arms.append(Arm(
            name=name or f"arm-{len(arms)}", model_id=mid or "", profile=profile or kind_of(mid or ""),
            cache=cache, cache_ttl=ttl or "5m",
            stream=ctx.bool_(a, p, "stream", model.stream) if p else model.stream,
            max_tokens=max_tokens or model.max_tokens, max_tokens_set=max_set,
            temperature=ctx.num(a, p, "temperature", model.temperature, low=0, high=1) if p else model.temperature,
            service_tier=_service_tier(ctx, a, p, ainfo, target.kind),
        ))
    return tuple(arms)


def _service_tier(ctx: _Ctx, a: Mapping[str, Any], p: tuple, info: Any, target_kind: str) -> str | None:
    """An arm's `service_tier` (Converse serviceTier.type), checked against the models.toml
    `service_tiers` of the arm's model: Bedrock refuses a tier the model does not offer."""
    tier = ctx.str_(a, p, "service_tier", None, choices=SERVICE_TIERS) if p else None
    if tier is None or info is None:
        return tier
    if tier not in info.service_tiers:
        ctx.err(p + ("service_tier",), f"model {info.base_id} ({info.name}) does not offer tier {tier!r}, "
                                       f"offered: {', '.join(info.service_tiers)} (models.toml service_tiers)")
    elif tier == "reserved" and target_kind != "aws":
        ctx.err(p + ("service_tier",), "the emulator has no reserved capacity, so Bedrock's answer "
                                       "\"Reservation not found.\" would fail every request; reserved "
                                       "needs target.kind = \"aws\" and a reservation")
    return tier


def _name_ok(ctx: _Ctx, path: tuple, name: str) -> bool:
    """A scenario or arm name names files and directories: NAME_RULE, at most NAME_MAX_CHARS."""
    if not name:
        ctx.err(path, f"expected a non-empty name ({NAME_RULE})")
        return False
    if len(name) > NAME_MAX_CHARS:
        ctx.err(path, f"expected at most {NAME_MAX_CHARS} characters (it names files and directories), "
                      f"got {len(name)}: {name[:20]!r}...")
        return False
    if not _NAME.fullmatch(name):
        bad = next((c for c in name if not re.fullmatch(r"[A-Za-z0-9._-]", c)), name[0])
        ctx.err(path, f"expected {NAME_RULE} (it names files and directories), got {name!r} "
                      f"(not allowed: {bad!r}{' at the start' if re.fullmatch(r'[._-]', bad) else ''})")
        return False
    return True


def _thresholds(ctx: _Ctx, raw: Mapping[str, Any], arm_names: list[str]) -> tuple[Threshold, ...]:
    t = ctx.table(raw, (), "thresholds")
    if t is None:
        return ()
    p = ("thresholds",)
    ctx.keys(t, p, ("all", "arms"))
    out: list[Threshold] = []

    def exprs(v: object, vp: tuple, arm: str | None) -> None:
        if not isinstance(v, list):
            ctx.err(vp, f'expected an array of expressions like ["p99(ttft) < 2s"], got {_kind(v)} {v!r}')
            return
        for i, e in enumerate(v):
            try:
                thresholds.parse(e)
            except ValueError as err:
                ctx.err(vp + (i,), str(err))
                continue
            out.append(Threshold(expr=e.strip(), arm=arm, line=ctx.line(vp + (i,))))

    if "all" in t:
        exprs(t["all"], p + ("all",), None)
    per_arm = ctx.table(t, p, "arms")
    for name, v in (per_arm or {}).items():
        ap = p + ("arms", name)
        if name not in arm_names:
            near = difflib.get_close_matches(name, arm_names, n=1)
            ctx.err(ap, f"no arm named {name!r}" + (f"; did you mean {near[0]!r}?" if near
                                                    else f" (arms: {', '.join(arm_names)})"))
            continue
        exprs(v, ap, name)
    return tuple(out)


def _pricing(ctx: _Ctx, raw: Mapping[str, Any]) -> tuple[PriceOverride, ...]:
    v = raw.get("pricing", _MISSING)
    if v is _MISSING:
        return ()
    items: list[tuple[tuple, str | None, Any]] = []
    if isinstance(v, dict):  # [pricing."us.anthropic..."] input_per_mtok = ..., output_per_mtok = ...
        items = [(("pricing", k), k, row) for k, row in v.items()]
    elif isinstance(v, list):  # [[pricing]] model_id = "...", ...
        for i, row in enumerate(v):
            mid = row.get("model_id") if isinstance(row, dict) else None
            items.append((("pricing", i), mid, row))
    else:
        ctx.err(("pricing",), f'expected [pricing."<model id>"] tables, got {_kind(v)}')
        return ()
    out = []
    for p, mid, row in items:
        if not isinstance(row, dict):
            ctx.err(p, f"expected a table with {', '.join(PRICE_KEYS)} (USD per 1M tokens), got {_kind(row)}")
            continue
        ctx.keys(row, p, PRICE_KEYS + (("model_id",) if isinstance(p[-1], int) else ()))
        if not isinstance(mid, str):
            ctx.err(p + ("model_id",), "missing; expected the model id this price is for")
            continue
        if _lookup_model(ctx, p, mid) is None:
            continue
        i = ctx.num(row, p, "input_per_mtok", low=0)
        o = ctx.num(row, p, "output_per_mtok", low=0)
        if i is not None and o is not None:
            out.append(PriceOverride(model_id=mid, input_per_mtok=i, output_per_mtok=o))
    return tuple(out)


def _check_prices(ctx: _Ctx, arms: tuple[Arm, ...], overrides: tuple[PriceOverride, ...],
                  from_table: bool) -> None:
    """Every arm must be priceable, or its bill would be wrong (never silently $0)."""
    try:
        table = pricing.table_for(overrides)
    except pricing.PricingError as e:
        ctx.err(("pricing",), str(e))
        return
    for i, arm in enumerate(arms):
        try:
            table.price(arm.model_id)
            table.family_of(arm.model_id).write_mult(arm.cache_ttl) if arm.cache else None
        except pricing.PricingError as e:
            ctx.err(("arms", i) if from_table else ("model", "id"), str(e))


def _check_context(ctx: _Ctx, workload: Workload, arms: tuple[Arm, ...]) -> None:
    """A prefix longer than the model's context window fails every request (Bedrock answers
    ValidationException): refuse it here rather than run to 100 % failure."""
    for arm in arms:
        try:
            info = lookup(arm.model_id)
        except UnknownModel:
            continue
        if workload.prefix_tokens > info.context_window:
            ctx.err(("workload", "prefix_tokens"),
                    f"{workload.prefix_tokens} tokens is above {info.name}'s context window of "
                    f"{info.context_window} tokens (arm {arm.name!r}): every request would be refused")
            return


def _cache_warnings(ctx: _Ctx, workload: Workload, arms: tuple[Arm, ...]) -> None:
    for arm in arms:
        if not arm.cache:
            continue
        try:
            info = lookup(arm.model_id)
        except UnknownModel:
            continue
        if workload.prefix_tokens < info.cache_min_tokens:
            ctx.warn(("workload", "prefix_tokens"),
                     f"arm {arm.name!r} asks for caching, but prefix_tokens = {workload.prefix_tokens} is below "
                     f"{info.name}'s cache minimum of {info.cache_min_tokens} tokens: Bedrock silently ignores "
                     f"such a checkpoint (cacheReadInputTokens and cacheWriteInputTokens both 0), so the arm "
                     f"will pay full input price" + (" until an agent's history grows past the minimum"
                                                     if workload.kind == "agent" else ""))


def _max_tokens_warnings(ctx: _Ctx, arms: tuple[Arm, ...]) -> None:
    """A model AWS lists as Legacy may be gone (models.toml lifecycle, eol). An arm without max_tokens sends no maxTokens; Bedrock then reserves the model's maximum
    output per request against the TPM quota (botocore InferenceConfiguration.maxTokens;
    AWS quotas-token-burndown: reservation = input + max_tokens), which caps requests in
    flight long before the tokens actually used would."""
    said = set()
    for arm in arms:
        try:
            info = lookup(arm.model_id)
        except UnknownModel:
            continue
        if info.lifecycle == "legacy" and ("legacy", info.base_id) not in said:
            said.add(("legacy", info.base_id))
            ctx.warn(("model",), f"AWS lists {info.name} as Legacy (end of life {info.eol}, models.toml): "
                                 "Bedrock may no longer serve it; plan on its successor")
        if arm.max_tokens_set or info.base_id in said:
            continue
        said.add(info.base_id)
        ctx.warn(("model",), f"max_tokens is not set, so requests omit maxTokens and Bedrock defaults it to "
                             f"{info.name}'s maximum output, which reserves {info.max_output_tokens:,} "
                             f"tokens per request against your TPM quota (plus the input) until the request "
                             f"ends; set max_tokens to the longest reply you need")


def _check_emulator(ctx: _Ctx, table: Mapping[str, Any]) -> None:
    """The emulator owns its keys; ask it, and place its `emulator.<key>` errors on their line."""
    try:
        from loadgen.emulator.config import EmulatorConfig
    except ImportError:  # the emulator is optional for parsing; `run` will check again
        return
    try:
        EmulatorConfig.from_mapping(table)
    except ValueError as e:
        msg = str(e)
        m = re.match(r"emulator\.(\S+?): (.*)$", msg, re.S)
        if not m:
            ctx.err(("emulator",), msg)
            return
        ctx.err(("emulator",) + _key_path(table, m.group(1)), m.group(2))


def _key_path(tbl: Any, dotted: str) -> tuple:
    """Split a dotted key against the dict it addresses (keys may themselves hold dots)."""
    out: list[str] = []
    rest = dotted
    while rest and isinstance(tbl, Mapping):
        match = max((k for k in tbl if rest == k or rest.startswith(k + ".")), key=len, default=None)
        if match is None:
            out.append(rest.split(".")[0])
            break
        out.append(match)
        tbl, rest = tbl[match], rest[len(match) + 1:]
    return tuple(out)


# --------------------------------------------------------------------------- entry points

def load(path: str) -> Scenario:
    """Read, parse and validate a scenario file; ScenarioError on any problem.

    Relative file references (empirical data, traces) are resolved against the
    scenario file's folder.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ScenarioError([f"{path}: cannot read scenario file: {e.strerror or e}"]) from None
    return loads(decode(data, path), path)


def decode(data: bytes, path: str) -> str:
    """The text of a scenario file: TOML is UTF-8 (toml.io, "Spec"); anything else is a
    ScenarioError naming the file and the line of the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ScenarioError([f"{path}:1: not a UTF-8 text file: it starts with a UTF-16 byte-order mark; "
                             "TOML files must be UTF-8 (save it again as UTF-8)"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        what = ("a binary file (it holds NUL bytes)" if b"\x00" in data
                else f"not UTF-8 text (byte 0x{data[e.start]:02x})")
        raise ScenarioError([f"{path}:{line}: {what}; TOML scenario files must be UTF-8 text"]) from None


def loads(text: str, path: str = "<scenario>") -> Scenario:
    """Parse scenario text; `path` names it in messages and anchors relative file references."""
    try:
        raw = toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise ScenarioError([syntax_error(path, text, e)]) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raw = None
    if raw is None or nesting_depth(raw) > MAX_NESTING:
        raise ScenarioError([f"{path}:{deep_line(text, MAX_NESTING)}: tables and arrays nested more than "
                             f"{MAX_NESTING} deep; a scenario needs at most a few levels"])
    ctx = _Ctx(path, key_lines(text))
    scenario = _build(ctx, raw, text)
    if ctx.problems:
        raise ScenarioError([m for _, m in sorted(ctx.problems, key=lambda x: x[0])])
    assert scenario is not None
    return scenario


def _build(ctx: _Ctx, raw: Mapping[str, Any], text: str) -> Scenario | None:
    ctx.keys(raw, (), TOP_KEYS)
    # without a name key, the file's stem names the run, made plain (it is not the user's typing)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(os.path.basename(ctx.path))[0])
    stem = stem.lstrip("._-")[:NAME_MAX_CHARS] or "scenario"
    name = ctx.str_(raw, (), "name", stem)
    if name is not None and not _name_ok(ctx, ("name",), name):
        name = stem
    seed = ctx.int_(raw, (), "seed", 0)
    duration = ctx.duration(raw, (), "duration")
    description = ctx.str_(raw, (), "description", "")
    target = _target(ctx, raw)
    model, info = _model(ctx, raw)
    workload = _workload(ctx, raw)

    arrivals = None
    if "arrivals" in raw:
        arrivals = _process(ctx, raw["arrivals"], ("arrivals",), header=True)
    sessions = _sessions(ctx, raw)
    has_a, has_s = "arrivals" in raw, "sessions" in raw
    if has_a and has_s:
        ctx.err(("sessions",), "a scenario has either [arrivals] (open loop, single-turn requests) or "
                               "[sessions] (closed-loop agent sessions), not both")
    elif not has_a and not has_s:
        ctx.err(("workload",) if "workload" in raw else ("arrivals",), "missing the traffic shape: add [arrivals] "
                "(open loop, kind = \"single\") or [sessions] (agent sessions, kind = \"agent\")")
    elif workload is not None:
        if workload.kind == "single" and has_s:
            ctx.err(("sessions",), 'workload kind = "single" goes with [arrivals]; [sessions] drive '
                                   'kind = "agent" workloads')
        if workload.kind == "agent" and has_a:
            ctx.err(("arrivals",), 'workload kind = "agent" goes with [sessions] (arrival, think_time); '
                                   '[arrivals] drive kind = "single" workloads')

    retry = _retry(ctx, raw)
    arms = _arms(ctx, raw, model, info, target) if info is not None or "arms" in raw else ()
    thresholds_ = _thresholds(ctx, raw, [a.name for a in arms])
    prices = _pricing(ctx, raw)
    if arms and not ctx.problems:
        _check_prices(ctx, arms, prices, "arms" in raw)
    emulator = ctx.table(raw, (), "emulator") or {}
    _check_emulator(ctx, emulator)
    if workload is not None and arms:
        _check_context(ctx, workload, arms)
        _cache_warnings(ctx, workload, arms)
    _max_tokens_warnings(ctx, arms)
    if ctx.problems:
        return None
    return Scenario(
        name=name, seed=seed, duration=duration, target=target, model=model, workload=workload,
        arms=arms, arrivals=arrivals, sessions=sessions, retry=retry, thresholds=thresholds_,
        pricing=prices, emulator=emulator, description=description, path=ctx.path, source=text,
        warnings=tuple(m for _, m in sorted(ctx.warnings, key=lambda x: x[0])),
    )
