"""EmulatorConfig: a scenario's `[emulator]` table merged over loadgen/catalog/data/emulator.toml.

Every error is a ConfigError carrying the key path (keys and array indexes under
`[emulator]`) and what was expected; its text names the dotted key, e.g.
`emulator.quotas.tpm: expected a positive integer, got -5`, so callers that place it on a
line of a file use `.path`, never the text. Unknown keys are errors.
Durations accept seconds (number) or strings with a unit ("90s", "10m", "1h").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, NoReturn

from loadgen.catalog import data

Path = tuple  # tuple[str | int, ...]: keys and array indexes under [emulator]

DEFAULTS_FILE = "emulator.toml"
ERROR_CODES = {
    # Bedrock error code -> HTTP status (DESIGN.md, "Bedrock facts")
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
STREAM_EXCEPTIONS = ("internalServerException", "modelStreamErrorException", "validationException",
                     "throttlingException", "serviceUnavailableException")
LATENCY_KEYS = ("ttft_s", "ttft_sigma", "prefill_s_per_1k", "cache_read_s_per_1k", "tokens_per_s",
                "tokens_per_s_sigma", "cross_region_s", "queue_knee", "queue_max_s")


@dataclass(frozen=True)
class Latency:
    """Latency model parameters, scenario seconds (see emulator.toml for meaning)."""

    ttft_s: float
    ttft_sigma: float
    prefill_s_per_1k: float
    cache_read_s_per_1k: float
    tokens_per_s: float          # 0 = instant output
    tokens_per_s_sigma: float
    cross_region_s: float
    queue_knee: float
    queue_max_s: float


@dataclass(frozen=True)
class Limit:
    tpm: int        # tokens per minute; 0 = unlimited
    rpm: int        # requests per minute; 0 = off
    tpd: int = 0    # tokens per day (86,400 scenario s); 0 = off


@dataclass(frozen=True)
class Brownout:
    region: str
    start_s: float
    end_s: float
    error_rate: float
    code: str
    extra_latency_s: float


@dataclass(frozen=True)
class Faults:
    error_rates: tuple[tuple[str, float], ...] = ()
    mid_stream_rate: float = 0.0
    mid_stream_code: str = "modelStreamErrorException"
    slow_stream_rate: float = 0.0
    slow_stream_factor: float = 10.0
    connection_reset_rate: float = 0.0
    brownouts: tuple[Brownout, ...] = ()


@dataclass(frozen=True)
class EmulatorConfig:
    latency: Latency
    latency_name: str
    default_max_tokens: int | None    # None: the model's maximum output (Bedrock's default)
    stream_errors_in_band: bool
    stream_chunk_tokens: int
    output_median: float
    output_p90: float
    quota_default: Limit
    quota_scopes: tuple[tuple[str, Limit], ...]      # (region|geo|global, Limit)
    quota_models: tuple[tuple[str, Limit], ...]      # (model id as called, Limit)
    window: str                                      # sliding | fixed
    window_s: float
    prefer_source: bool
    spill_at: float
    region_capacity_tpm: int
    cache_scope: str                                 # region | profile
    cache_max_entries: int
    faults: Faults = field(default_factory=Faults)

    def limit_for(self, model_id: str, scope: str) -> Limit:
        """Quota for a model id as called, in its scope (region|geo|global)."""
        for mid, lim in self.quota_models:
            if mid == model_id:
                return lim
        for s, lim in self.quota_scopes:
            if s == scope:
                return lim
        return self.quota_default

    @classmethod
    def defaults(cls) -> "EmulatorConfig":
        return cls.from_mapping({})

    @classmethod
    def from_mapping(cls, table: Mapping, *, source: str = "<emulator>") -> "EmulatorConfig":
        """Validate a scenario's [emulator] table over the shipped defaults.

        Raises ConfigError (a ValueError) with the key's path and what was expected; its
        text is prefixed by `source` when that is a file name.
        """
        try:
            return _build(table)
        except ConfigError as e:
            if source != "<emulator>":
                raise ConfigError(e.path, e.message, source=source) from None
            raise


class ConfigError(ValueError):
    """A bad value or key in an `[emulator]` table.

    path: keys and array indexes relative to the table, as in the parsed dict, e.g.
    ("faults", "brownouts", 0, "end") or ("quotas", "models", "us.x", "tpm");
    message: what was expected, without the key. str(): `emulator.<dotted key>: <message>`,
    prefixed by `<source>: ` when one is given.
    """

    def __init__(self, path: Path, message: str, *, source: str | None = None) -> None:
        self.path = tuple(path)
        self.message = message
        self.source = source
        text = f"emulator.{dotted(self.path)}: {message}"
        super().__init__(f"{source}: {text}" if source else text)


def dotted(path: Path) -> str:
    """A key path as errors name it: `faults.brownouts[0].end`. A model id under
    quotas.models is quoted, as it holds dots: `quotas.models."us.x".tpm`."""
    out = ""
    for i, p in enumerate(path):
        if isinstance(p, int):
            out += f"[{p}]"
            continue
        part = f'"{p}"' if path[:i] == ("quotas", "models") else p
        out = f"{out}.{part}" if out else part
    return out


# ---------------------------------------------------------------------------


def _fail(path: Path, expected: str, got: Any) -> NoReturn:
    raise ConfigError(path, f"expected {expected}, got {got!r}")


def _check_keys(t: Any, path: Path, allowed: tuple[str, ...]) -> Mapping:
    if not isinstance(t, Mapping):
        _fail(path, "a table", t)
    for k in t:
        if k not in allowed:
            raise ConfigError(path + (k,), f"unknown key (expected one of {', '.join(allowed)})")
    return t


def _pos_int(v: Any, path: Path, *, allow_zero: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and not allow_zero):
        _fail(path, "a non-negative integer" if allow_zero else "a positive integer", v)
    return int(v)


def _default_max_tokens(v: Any) -> int | None:
    """"model" (None: the model's maximum output, Bedrock's default) or tokens."""
    if v == "model":
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        _fail(("default_max_tokens",), 'a positive integer or "model"', v)
    return int(v)


def _num(v: Any, path: Path, *, lo: float = 0.0, hi: float | None = None, what: str = "") -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo or (hi is not None and v > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        _fail(path, what or f"a number {rng}", v)
    return float(v)


def _bool(v: Any, path: Path) -> bool:
    if not isinstance(v, bool):
        _fail(path, "true or false", v)
    return v


def _choice(v: Any, path: Path, options: tuple[str, ...]) -> str:
    if v not in options:
        _fail(path, "one of " + ", ".join(repr(o) for o in options), v)
    return v


_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration(v: Any, path: Path) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    if isinstance(v, str):
        m = _DUR.match(v)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    _fail(path, 'a duration (seconds, or a string like "90s", "10m", "1h")', v)


def _merge(base: Mapping, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _latency(v: Any, presets: Mapping) -> tuple[str, Latency]:
    names = tuple(presets)
    if isinstance(v, str):
        name, over = _choice(v, ("latency",), names), {}
    elif isinstance(v, Mapping):
        _check_keys(v, ("latency",), ("preset", *LATENCY_KEYS))
        name = _choice(v.get("preset", "realistic"), ("latency", "preset"), names)
        over = {k: x for k, x in v.items() if k != "preset"}
        name = f"{name}+custom" if over else name
    else:
        _fail(("latency",), "a preset name (" + ", ".join(names) + ") or a table", v)
    params = dict(presets[name.split("+")[0]])
    params.update(over)
    vals = {}
    for k in LATENCY_KEYS:
        hi = 1.0 if k == "queue_knee" else None
        vals[k] = _num(params.get(k, 0.0), ("latency", k), lo=0.0, hi=hi)
    return name, Latency(**vals)


def _limit(t: Any, path: Path, base: Limit) -> Limit:
    _check_keys(t, path, ("tpm", "rpm", "tpd"))
    return Limit(tpm=_pos_int(t.get("tpm", base.tpm), path + ("tpm",), allow_zero=True),
                 rpm=_pos_int(t.get("rpm", base.rpm), path + ("rpm",), allow_zero=True),
                 tpd=_pos_int(t.get("tpd", base.tpd), path + ("tpd",), allow_zero=True))


def _scope_table(merged: Mapping, user: Any, scope: str) -> Any:
    """The {tpm, rpm, tpd} table of one quota scope, with the precedence docs/emulator.md states:
    the user's `quotas.<scope>.<key>`, else the user's top-level `quotas.<key>`, else the
    shipped `quotas.<scope>.<key>`, else the shipped top-level `quotas.<key>`. Without the
    second step a user's `tpm = 30000` would be silently beaten by the shipped geo/global
    defaults for `us.`/`global.` ids."""
    t = merged[scope]
    if not isinstance(t, Mapping) or not isinstance(user, Mapping):
        return t  # _limit/_check_keys report the bad type
    own = user.get(scope)
    own = own if isinstance(own, Mapping) else {}
    out = dict(t)
    for k in ("tpm", "rpm", "tpd"):
        if k in user and k not in own:
            out[k] = user[k]
    return out


def _brownout(b: Any, path: Path) -> Brownout:
    _check_keys(b, path, ("region", "start", "end", "error_rate", "code", "extra_latency_s"))
    if not isinstance(b.get("region"), str):
        _fail(path + ("region",), "a Region name", b.get("region"))
    start = _duration(b.get("start", 0), path + ("start",))
    end = _duration(b.get("end", 0), path + ("end",))
    if end <= start:
        _fail(path + ("end",), f"a time after start ({start} s)", b.get("end"))
    return Brownout(
        region=b["region"], start_s=start, end_s=end,
        error_rate=_num(b.get("error_rate", 1.0), path + ("error_rate",), hi=1.0),
        code=_choice(b.get("code", "ServiceUnavailableException"), path + ("code",), tuple(ERROR_CODES)),
        extra_latency_s=_num(b.get("extra_latency_s", 0.0), path + ("extra_latency_s",)))


def _faults(t: Any) -> Faults:
    f: Path = ("faults",)
    _check_keys(t, f, ("error_rates", "mid_stream_rate", "mid_stream_code", "slow_stream_rate",
                       "slow_stream_factor", "connection_reset_rate", "brownouts"))
    rates = _check_keys(t.get("error_rates", {}), f + ("error_rates",), tuple(ERROR_CODES))
    error_rates = tuple((c, _num(p, f + ("error_rates", c), hi=1.0)) for c, p in rates.items())
    if sum(p for _, p in error_rates) > 1.0:
        _fail(f + ("error_rates",), "probabilities summing to at most 1", dict(rates))
    bos = t.get("brownouts", [])
    if not isinstance(bos, list):
        _fail(f + ("brownouts",), "an array of tables", bos)
    brownouts = tuple(_brownout(b, f + ("brownouts", i)) for i, b in enumerate(bos))
    return Faults(
        error_rates=error_rates,
        mid_stream_rate=_num(t.get("mid_stream_rate", 0.0), f + ("mid_stream_rate",), hi=1.0),
        mid_stream_code=_choice(t.get("mid_stream_code", "modelStreamErrorException"),
                                f + ("mid_stream_code",), STREAM_EXCEPTIONS),
        slow_stream_rate=_num(t.get("slow_stream_rate", 0.0), f + ("slow_stream_rate",), hi=1.0),
        slow_stream_factor=_num(t.get("slow_stream_factor", 10.0), f + ("slow_stream_factor",), lo=1.0),
        connection_reset_rate=_num(t.get("connection_reset_rate", 0.0), f + ("connection_reset_rate",), hi=1.0),
        brownouts=brownouts,
    )


def _build(table: Mapping) -> EmulatorConfig:
    defaults = data.load(DEFAULTS_FILE)
    presets = defaults.pop("latency_presets")
    top = ("latency", "default_max_tokens", "stream_errors_in_band", "stream_chunk_tokens",
           "output_tokens", "quotas", "routing", "cache", "faults")
    _check_keys(table, (), top)
    # a latency table replaces the default preset name rather than merging with it
    t = _merge(defaults, {k: v for k, v in table.items() if k != "latency"})
    if "latency" in table:
        t["latency"] = table["latency"]
    name, latency = _latency(t["latency"], presets)

    out = _check_keys(t["output_tokens"], ("output_tokens",), ("median", "p90"))
    median = _num(out.get("median"), ("output_tokens", "median"), lo=1.0)
    p90 = _num(out.get("p90"), ("output_tokens", "p90"), lo=median, what=f"a number >= median ({median})")

    q = _check_keys(t["quotas"], ("quotas",), ("tpm", "rpm", "tpd", "window", "window_s", "region", "geo",
                                                "global", "models"))
    default = Limit(tpm=_pos_int(q["tpm"], ("quotas", "tpm"), allow_zero=True),
                    rpm=_pos_int(q["rpm"], ("quotas", "rpm"), allow_zero=True),
                    tpd=_pos_int(q.get("tpd", 0), ("quotas", "tpd"), allow_zero=True))
    scopes = tuple((s, _limit(_scope_table(q, table.get("quotas"), s), ("quotas", s), default))
                   for s in ("region", "geo", "global") if s in q)
    models = q.get("models", {})
    _check_keys(models, ("quotas", "models"), tuple(models) if isinstance(models, Mapping) else ())
    per_model = tuple((m, _limit(lim, ("quotas", "models", m), default)) for m, lim in models.items())

    r = _check_keys(t["routing"], ("routing",), ("prefer_source", "spill_at", "region_capacity_tpm"))
    c = _check_keys(t["cache"], ("cache",), ("scope", "max_entries"))
    return EmulatorConfig(
        latency=latency,
        latency_name=name,
        default_max_tokens=_default_max_tokens(t["default_max_tokens"]),
        stream_errors_in_band=_bool(t["stream_errors_in_band"], ("stream_errors_in_band",)),
        stream_chunk_tokens=_pos_int(t["stream_chunk_tokens"], ("stream_chunk_tokens",)),
        output_median=median,
        output_p90=p90,
        quota_default=default,
        quota_scopes=scopes,
        quota_models=per_model,
        window=_choice(q["window"], ("quotas", "window"), ("sliding", "fixed")),
        window_s=_num(q["window_s"], ("quotas", "window_s"), lo=1.0),
        prefer_source=_bool(r["prefer_source"], ("routing", "prefer_source")),
        spill_at=_num(r["spill_at"], ("routing", "spill_at"), hi=1.0),
        region_capacity_tpm=_pos_int(r["region_capacity_tpm"], ("routing", "region_capacity_tpm"), allow_zero=True),
        cache_scope=_choice(c["scope"], ("cache", "scope"), ("region", "profile")),
        cache_max_entries=_pos_int(c["max_entries"], ("cache", "max_entries")),
        faults=_faults(t["faults"]),
    )
