"""EmulatorConfig: a scenario's `[emulator]` table merged over loadgen/catalog/data/emulator.toml.

Every problem is a ConfigError carrying the key path (keys and array indexes under
`[emulator]`) and what was expected; its text names the dotted key, e.g.
`emulator.quotas.tpm: expected a positive integer, got -5`, so callers that place it on a
line of a file use `.path`, never the text. One pass finds every problem in the table
(`ConfigError.problems`), as the scenario's own readers do. Unknown keys are errors, with
the scenario's did-you-mean. Durations accept seconds (number) or strings with a unit
("90s", "10m", "1h").

Over 400 lines on purpose: the readers and the one table they check read top to bottom
in one file, in the order of emulator.toml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from loadgen.catalog import data
from loadgen.scenario.fields import near_hint, unknown_key

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

        Raises ConfigError (a ValueError) holding every problem (`.problems`, in the order
        the table was read; the first is also its own `.path` and `.message`); its text is
        prefixed by `source` when that is a file name.
        """
        bad: list[ConfigError] = []
        config = _build(table, bad)
        if bad:
            raise ConfigError.of(bad, source=None if source == "<emulator>" else source)
        return config


class ConfigError(ValueError):
    """Bad values or keys in an `[emulator]` table.

    path: keys and array indexes relative to the table, as in the parsed dict, e.g.
    ("faults", "brownouts", 0, "end") or ("quotas", "models", "us.x", "tpm");
    message: what was expected, without the key. str(): `emulator.<dotted key>: <message>`,
    prefixed by `<source>: ` when one is given, one line per problem. `.problems`: every
    problem found (each a ConfigError of one), so a file's errors are all reported at once.
    """

    def __init__(self, path: Path, message: str, *, source: str | None = None) -> None:
        self.path = tuple(path)
        self.message = message
        self.source = source
        self.problems: tuple[ConfigError, ...] = (self,)
        text = f"emulator.{dotted(self.path)}: {message}"
        super().__init__(f"{source}: {text}" if source else text)

    @classmethod
    def of(cls, problems: list["ConfigError"], *, source: str | None = None) -> "ConfigError":
        """One error standing for all of `problems` (the first names .path and .message)."""
        placed = tuple(cls(p.path, p.message, source=source) for p in problems)
        out = cls(placed[0].path, placed[0].message, source=source)
        out.problems = placed
        out.args = ("\n".join(str(p) for p in placed),)
        return out


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


# The readers below report a problem into `bad` and return a stand-in value, so one
# pass reports every problem in the table (as the scenario's own readers do, see
# loadgen/scenario/fields.py); the config built from stand-ins is never used.

def _fail(bad: list[ConfigError], path: Path, expected: str, got: Any, hint: str = "") -> None:
    bad.append(ConfigError(path, f"expected {expected}, got {got!r}{hint}"))


def _check_keys(t: Any, path: Path, allowed: tuple[str, ...], bad: list[ConfigError]) -> Mapping:
    """`t` if it is a table (its unknown keys reported, each with a did-you-mean), else {}."""
    if not isinstance(t, Mapping):
        _fail(bad, path, "a table", t)
        return {}
    for k in t:
        if k not in allowed:
            bad.append(ConfigError(path + (k,), unknown_key(k, allowed)))
    return t


def _pos_int(v: Any, path: Path, bad: list[ConfigError], *, allow_zero: bool = False) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and not allow_zero):
        _fail(bad, path, "a non-negative integer" if allow_zero else "a positive integer", v)
        return 1
    return int(v)


def _default_max_tokens(v: Any, bad: list[ConfigError]) -> int | None:
    """"model" (None: the model's maximum output, Bedrock's default) or tokens."""
    if v == "model":
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        _fail(bad, ("default_max_tokens",), 'a positive integer or "model"', v)
        return None
    return int(v)


def _num(v: Any, path: Path, bad: list[ConfigError], *, lo: float = 0.0, hi: float | None = None,
         what: str = "") -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo or (hi is not None and v > hi):
        rng = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        _fail(bad, path, what or f"a number {rng}", v)
        return lo
    return float(v)


def _bool(v: Any, path: Path, bad: list[ConfigError]) -> bool:
    if not isinstance(v, bool):
        _fail(bad, path, "true or false", v)
        return False
    return v


def _choice(v: Any, path: Path, options: tuple[str, ...], bad: list[ConfigError]) -> str:
    if v not in options:
        _fail(bad, path, "one of " + ", ".join(repr(o) for o in options), v,
              near_hint(v, options) if isinstance(v, str) else "")
        return options[0]
    return v


_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _duration(v: Any, path: Path, bad: list[ConfigError]) -> float | None:
    """Seconds; None after reporting a value that is not a duration."""
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
        return float(v)
    if isinstance(v, str):
        m = _DUR.match(v)
        if m:
            return float(m.group(1)) * _UNIT[m.group(2)]
    _fail(bad, path, 'a duration (seconds, or a string like "90s", "10m", "1h")', v)
    return None


def _merge(base: Mapping, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _latency(v: Any, presets: Mapping, bad: list[ConfigError]) -> tuple[str, Latency]:
    names = tuple(presets)
    over: Mapping = {}
    if isinstance(v, str):
        name = _choice(v, ("latency",), names, bad)
    elif isinstance(v, Mapping):
        _check_keys(v, ("latency",), ("preset", *LATENCY_KEYS), bad)
        name = _choice(v.get("preset", "realistic"), ("latency", "preset"), names, bad)
        over = {k: x for k, x in v.items() if k in LATENCY_KEYS}
        name = f"{name}+custom" if over else name
    else:
        _fail(bad, ("latency",), "a preset name (" + ", ".join(names) + ") or a table", v)
        name = names[0]
    params = dict(presets[name.split("+")[0]])
    params.update(over)
    vals = {}
    for k in LATENCY_KEYS:
        hi = 1.0 if k == "queue_knee" else None
        vals[k] = _num(params.get(k, 0.0), ("latency", k), bad, lo=0.0, hi=hi)
    return name, Latency(**vals)


def _limit(t: Any, path: Path, base: Limit, bad: list[ConfigError]) -> Limit:
    t = _check_keys(t, path, ("tpm", "rpm", "tpd"), bad)
    return Limit(tpm=_pos_int(t.get("tpm", base.tpm), path + ("tpm",), bad, allow_zero=True),
                 rpm=_pos_int(t.get("rpm", base.rpm), path + ("rpm",), bad, allow_zero=True),
                 tpd=_pos_int(t.get("tpd", base.tpd), path + ("tpd",), bad, allow_zero=True))


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


def _brownout(b: Any, path: Path, bad: list[ConfigError]) -> Brownout:
    if not isinstance(b, Mapping):  # reported once, not again for each key it lacks
        _fail(bad, path, "a table", b)
        return Brownout("", 0.0, 0.0, 0.0, "ServiceUnavailableException", 0.0)
    _check_keys(b, path, ("region", "start", "end", "error_rate", "code", "extra_latency_s"), bad)
    region = b.get("region")
    if not isinstance(region, str):
        _fail(bad, path + ("region",), "a Region name", region)
    start = _duration(b.get("start", 0), path + ("start",), bad)
    end = _duration(b.get("end", 0), path + ("end",), bad)
    if "end" not in b:
        after = f"a time after start ({start} s)" if start is not None else "a duration"
        bad.append(ConfigError(path + ("end",), f"missing; expected {after}"))
    elif start is not None and end is not None and end <= start:
        _fail(bad, path + ("end",), f"a time after start ({start} s)", b.get("end"))
    return Brownout(
        region=str(region), start_s=start or 0.0, end_s=end or 0.0,
        error_rate=_num(b.get("error_rate", 1.0), path + ("error_rate",), bad, hi=1.0),
        code=_choice(b.get("code", "ServiceUnavailableException"), path + ("code",), tuple(ERROR_CODES), bad),
        extra_latency_s=_num(b.get("extra_latency_s", 0.0), path + ("extra_latency_s",), bad))


def _faults(t: Any, bad: list[ConfigError]) -> Faults:
    f: Path = ("faults",)
    t = _check_keys(t, f, ("error_rates", "mid_stream_rate", "mid_stream_code", "slow_stream_rate",
                           "slow_stream_factor", "connection_reset_rate", "brownouts"), bad)
    rates = _check_keys(t.get("error_rates", {}), f + ("error_rates",), tuple(ERROR_CODES), bad)
    error_rates = tuple((c, _num(p, f + ("error_rates", c), bad, hi=1.0)) for c, p in rates.items()
                        if c in ERROR_CODES)
    if sum(p for _, p in error_rates) > 1.0:
        _fail(bad, f + ("error_rates",), "probabilities summing to at most 1", dict(rates))
    bos = t.get("brownouts", [])
    if not isinstance(bos, list):
        _fail(bad, f + ("brownouts",), "an array of tables", bos)
        bos = []
    brownouts = tuple(_brownout(b, f + ("brownouts", i), bad) for i, b in enumerate(bos))
    return Faults(
        error_rates=error_rates,
        mid_stream_rate=_num(t.get("mid_stream_rate", 0.0), f + ("mid_stream_rate",), bad, hi=1.0),
        mid_stream_code=_choice(t.get("mid_stream_code", "modelStreamErrorException"),
                                f + ("mid_stream_code",), STREAM_EXCEPTIONS, bad),
        slow_stream_rate=_num(t.get("slow_stream_rate", 0.0), f + ("slow_stream_rate",), bad, hi=1.0),
        slow_stream_factor=_num(t.get("slow_stream_factor", 10.0), f + ("slow_stream_factor",), bad, lo=1.0),
        connection_reset_rate=_num(t.get("connection_reset_rate", 0.0), f + ("connection_reset_rate",), bad,
                                   hi=1.0),
        brownouts=brownouts,
    )


def _build(table: Mapping, bad: list[ConfigError]) -> EmulatorConfig:
    """The config, every problem reported into `bad` (the result is then a stand-in)."""
    defaults = data.load(DEFAULTS_FILE)
    presets = defaults.pop("latency_presets")
    top = ("latency", "default_max_tokens", "stream_errors_in_band", "stream_chunk_tokens",
           "output_tokens", "quotas", "routing", "cache", "faults")
    table = _check_keys(table, (), top, bad)
    # a latency table replaces the default preset name rather than merging with it
    t = _merge(defaults, {k: v for k, v in table.items() if k != "latency" and k in top})
    if "latency" in table:
        t["latency"] = table["latency"]
    name, latency = _latency(t["latency"], presets, bad)

    out = _check_keys(t["output_tokens"], ("output_tokens",), ("median", "p90"), bad)
    median = _num(out.get("median", defaults["output_tokens"]["median"]), ("output_tokens", "median"), bad, lo=1.0)
    p90 = _num(out.get("p90", defaults["output_tokens"]["p90"]), ("output_tokens", "p90"), bad, lo=median,
               what=f"a number >= median ({median})")

    scope_keys = ("region", "geo", "global")
    q = _check_keys(t["quotas"], ("quotas",), ("tpm", "rpm", "tpd", "window", "window_s", *scope_keys, "models"),
                    bad)
    shipped = defaults["quotas"]
    default = Limit(tpm=_pos_int(q.get("tpm", shipped["tpm"]), ("quotas", "tpm"), bad, allow_zero=True),
                    rpm=_pos_int(q.get("rpm", shipped["rpm"]), ("quotas", "rpm"), bad, allow_zero=True),
                    tpd=_pos_int(q.get("tpd", 0), ("quotas", "tpd"), bad, allow_zero=True))
    user_q = table.get("quotas")
    if isinstance(user_q, Mapping):
        # a scope takes the user's top-level tpm/rpm/tpd (_scope_table): one that is bad is
        # reported once, at its own key, not again under every scope it would fill
        reported = {e.path for e in bad}
        user_q = {k: v for k, v in user_q.items() if ("quotas", k) not in reported}
    scopes = tuple((s, _limit(_scope_table(q, user_q, s), ("quotas", s), default, bad))
                   for s in scope_keys if s in q)
    models = q.get("models", {})
    models = _check_keys(models, ("quotas", "models"), tuple(models) if isinstance(models, Mapping) else (), bad)
    per_model = tuple((m, _limit(lim, ("quotas", "models", m), default, bad)) for m, lim in models.items())

    r = _check_keys(t["routing"], ("routing",), ("prefer_source", "spill_at", "region_capacity_tpm"), bad)
    c = _check_keys(t["cache"], ("cache",), ("scope", "max_entries"), bad)
    shipped_r, shipped_c = defaults["routing"], defaults["cache"]
    return EmulatorConfig(
        latency=latency,
        latency_name=name,
        default_max_tokens=_default_max_tokens(t["default_max_tokens"], bad),
        stream_errors_in_band=_bool(t["stream_errors_in_band"], ("stream_errors_in_band",), bad),
        stream_chunk_tokens=_pos_int(t["stream_chunk_tokens"], ("stream_chunk_tokens",), bad),
        output_median=median,
        output_p90=p90,
        quota_default=default,
        quota_scopes=scopes,
        quota_models=per_model,
        window=_choice(q.get("window", shipped["window"]), ("quotas", "window"), ("sliding", "fixed"), bad),
        window_s=_num(q.get("window_s", shipped["window_s"]), ("quotas", "window_s"), bad, lo=1.0),
        prefer_source=_bool(r.get("prefer_source", shipped_r["prefer_source"]), ("routing", "prefer_source"), bad),
        spill_at=_num(r.get("spill_at", shipped_r["spill_at"]), ("routing", "spill_at"), bad, hi=1.0),
        region_capacity_tpm=_pos_int(r.get("region_capacity_tpm", shipped_r["region_capacity_tpm"]),
                                     ("routing", "region_capacity_tpm"), bad, allow_zero=True),
        cache_scope=_choice(c.get("scope", shipped_c["scope"]), ("cache", "scope"), ("region", "profile"), bad),
        cache_max_entries=_pos_int(c.get("max_entries", shipped_c["max_entries"]), ("cache", "max_entries"), bad),
        faults=_faults(t["faults"], bad),
    )
