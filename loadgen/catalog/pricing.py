"""The price catalog (loadgen/catalog/data/pricing.toml) and the dollar cost of one Bedrock call.

Prices are data, dated and sourced; nothing here hard-codes a figure. A PriceTable holds
one row per (bare model id, profile kind) in USD per 1M tokens, and per model family the
cache and batch multipliers. `cost()` / `breakdown()` price one Converse `usage` dict:

    input x in + output x out + cache_read x in x read_mult
    + cache_write x in x write_mult[ttl]            (x batch_mult on all of it for batch)

The profile kind comes from the id's prefix (bare = region, `us.` = geo, `global.`), so
`global.anthropic.claude-haiku-...` and `us.anthropic.claude-haiku-...` cost differently.
Every failure is a PricingError (a ValueError) that says what was expected; an unknown
model is never priced at $0.

(Over 400 lines: the run's pricer keeps an on-demand fast path, `_on_demand`, beside
`_breakdown`, whose float operations it must repeat exactly; they are read together.)
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from loadgen.catalog import data
from loadgen.catalog.models import UnknownModel, lookup
from loadgen.catalog.profiles import KINDS, base_id, kind_of

CATALOG_FILE = "pricing.toml"
TTLS: tuple[str, ...] = ("5m", "1h")
# How a batch record's cache tokens are billed (pricing.toml [batch], an ASSUMPTION):
# "stacked" at the cache multipliers x batch, "unstacked" as plain input at the batch price.
BATCH_CACHE = ("stacked", "unstacked")
PER = 1_000_000  # prices are per 1M tokens


class PricingError(ValueError):
    """A model, profile or usage the price catalog cannot price; the message says why."""


@dataclass(frozen=True)
class Family:
    """Cache and batch multipliers shared by a model family (multiples of the input price)."""

    name: str
    cache_read: float
    cache_write: Mapping[str, float]   # ttl ("5m" | "1h") -> multiplier
    batch: float
    source: str
    verified: bool
    note: str = ""

    def write_mult(self, ttl: str) -> float:
        try:
            return self.cache_write[ttl]
        except KeyError:
            raise PricingError(
                f"model family {self.name!r} has no cache-write price for TTL {ttl!r} "
                f"(priced TTLs: {', '.join(self.cache_write)})"
            ) from None


@dataclass(frozen=True)
class Price:
    """One catalog row: a bare model id through one profile kind, USD per 1M tokens."""

    model_id: str          # bare id
    kind: str              # region | geo | global
    input_per_mtok: float
    output_per_mtok: float
    source: str
    verified: bool
    note: str = ""
    overridden: bool = False
    tiers: Mapping[str, "Price"] = field(default_factory=dict)   # "priority" | "flex" -> its row

    def for_tier(self, tier: str | None, model_id: str = "", path: str = "") -> "Price":
        """The row a request at Converse serviceTier `tier` is billed at. None, "default" and
        "reserved" bill at this (standard) row: reserved capacity is billed per tokens-per-minute
        per term, not per token, so its per-token cost is approximated by the standard price."""
        if tier in (None, "default", "reserved"):
            return self
        row = self.tiers.get(tier)
        if row is None:
            have = ", ".join(self.tiers) or "none"
            raise PricingError(
                f"no {tier} service-tier price for model {model_id or self.model_id!r} in "
                f"{path or 'the price catalog'} (priced tiers besides default: {have})")
        return row


@dataclass(frozen=True)
class Breakdown:
    """USD of one call (or a sum of calls) by bucket; `total` is their sum."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    # A field, not a property, so dataclasses.asdict() carries it as the summary expects.
    total: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.input + self.output + self.cache_read + self.cache_write)

    def __add__(self, other: "Breakdown") -> "Breakdown":
        # Summaries are merged from worker parts, so buckets must add.
        return Breakdown(self.input + other.input, self.output + other.output,
                         self.cache_read + other.cache_read, self.cache_write + other.cache_write)


@dataclass(frozen=True)
class PriceTable:
    """The catalog in force: rows by (bare id, kind), families, and where it came from."""

    as_of: _dt.date
    path: str
    families: Mapping[str, Family]
    model_family: Mapping[str, str]            # bare id -> family name
    model_name: Mapping[str, str]              # bare id -> human name
    rows: Mapping[tuple[str, str], Price]      # (bare id, kind) -> Price
    batch_cache: str = "stacked"               # BATCH_CACHE: the assumption cost_usd follows

    def price(self, model_id: str) -> Price:
        """The row for any id form; PricingError if the model or its profile is not priced."""
        bare, kind = base_id(model_id), kind_of(model_id)
        if bare not in self.model_family:
            raise PricingError(
                f"no price for model {model_id!r}: {bare!r} is not in the price catalog "
                f"{self.path} (priced: {', '.join(sorted(self.model_family))}); "
                "add it there or give it a [[pricing]] override in the scenario"
            )
        row = self.rows.get((bare, kind))
        if row is None:
            have = ", ".join(k for k in KINDS if (bare, k) in self.rows)
            raise PricingError(
                f"no {kind} price for model {model_id!r} in {self.path} "
                f"(priced profiles: {have or 'none'}); a {kind} profile may not exist for it"
            )
        return row

    def price_at(self, model_id: str, tier: str | None) -> Price:
        """The row for `model_id` at service tier `tier` (None: the default tier)."""
        return self.price(model_id).for_tier(tier, model_id, self.path)

    def family_of(self, model_id: str) -> Family:
        self.price(model_id)  # same clear error for an unknown model
        return self.families[self.model_family[base_id(model_id)]]

    def with_overrides(self, overrides: Iterable[Any]) -> "PriceTable":
        """A copy with scenario PriceOverrides applied (loadgen.scenario.PriceOverride).

        The override id's prefix picks the row: `us.anthropic.x` replaces the geo row of
        `anthropic.x` only. A model not yet priced may be added if loadgen.catalog.models knows
        its family (its cache multipliers must come from somewhere).
        """
        rows = dict(self.rows)
        fams = dict(self.model_family)
        names = dict(self.model_name)
        for o in overrides:
            bare, kind = base_id(o.model_id), kind_of(o.model_id)
            for what, v in (("input_per_mtok", o.input_per_mtok), ("output_per_mtok", o.output_per_mtok)):
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                    raise PricingError(
                        f"price override for {o.model_id!r}: {what} must be a number >= 0 "
                        f"(USD per 1M tokens), got {v!r}"
                    )
            if bare not in fams:
                fam, name = _family_from_model_catalog(o.model_id, self.path)
                if fam not in self.families:
                    raise PricingError(
                        f"price override for {o.model_id!r}: its family {fam!r} has no cache "
                        f"multipliers in {self.path} (families: {', '.join(sorted(self.families))})"
                    )
                fams[bare], names[bare] = fam, name
            rows[(bare, kind)] = Price(
                model_id=bare, kind=kind,
                input_per_mtok=float(o.input_per_mtok), output_per_mtok=float(o.output_per_mtok),
                source="scenario override", verified=False,
                note=f"overridden by [[pricing]] {o.model_id}", overridden=True,
            )
        return replace(self, rows=MappingProxyType(rows),
                       model_family=MappingProxyType(fams), model_name=MappingProxyType(names))


def _family_from_model_catalog(model_id: str, path: str) -> tuple[str, str]:
    try:
        info = lookup(model_id)
    except UnknownModel:
        raise PricingError(
            f"price override for {model_id!r}: the model is in neither the price catalog {path} "
            "nor the model catalog, so its cache multipliers are unknown"
        ) from None
    return info.family, info.name


# ---------------------------------------------------------------- loading

def _need(t: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in t:
        raise PricingError(f"{where}: missing key {key!r}")
    v = t[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise PricingError(f"{where}: {key} must be {getattr(kind, '__name__', kind)}, got {v!r}")
    return v


def _mult(v: Any, where: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise PricingError(f"{where}: must be a number >= 0, got {v!r}")
    return float(v)


# Service tiers a price row may carry besides its own (standard) price (see pricing.toml).
TIER_KEYS = ("priority", "flex")


def _row(mid: str, kind: str, r: Any, rw: str) -> Price:
    if not isinstance(r, dict):
        raise PricingError(f"{rw}: expected a table with input, output, source, verified")
    return Price(
        model_id=mid, kind=kind,
        input_per_mtok=_mult(_need(r, "input", rw, (int, float)), f"{rw}.input"),
        output_per_mtok=_mult(_need(r, "output", rw, (int, float)), f"{rw}.output"),
        source=_need(r, "source", rw, str),
        verified=_need(r, "verified", rw, bool),
        note=r.get("note", ""),
    )


def table_from_dict(raw: Mapping[str, Any], path: str = "<dict>") -> PriceTable:
    """Build a PriceTable from parsed TOML (the catalog file's shape; see pricing.toml)."""
    as_of = raw.get("as_of")
    if not isinstance(as_of, _dt.date):
        raise PricingError(f"{path}: as_of must be a TOML date like 2026-11-26, got {as_of!r}")
    families: dict[str, Family] = {}
    for name, f in _need(raw, "families", path, dict).items():
        where = f"{path}: families.{name}"
        writes = _need(f, "cache_write", where, dict)
        for ttl in writes:
            if ttl not in TTLS:
                raise PricingError(f"{where}.cache_write: unknown TTL {ttl!r} (expected {', '.join(TTLS)})")
        families[name] = Family(
            name=name,
            cache_read=_mult(_need(f, "cache_read", where, (int, float)), f"{where}.cache_read"),
            cache_write=MappingProxyType({t: _mult(m, f"{where}.cache_write.{t}") for t, m in writes.items()}),
            batch=_mult(_need(f, "batch", where, (int, float)), f"{where}.batch"),
            source=_need(f, "source", where, str),
            verified=_need(f, "verified", where, bool),
            note=f.get("note", ""),
        )
    model_family: dict[str, str] = {}
    model_name: dict[str, str] = {}
    rows: dict[tuple[str, str], Price] = {}
    for mid, m in _need(raw, "models", path, dict).items():
        where = f"{path}: models.{mid!r}"
        fam = _need(m, "family", where, str)
        if fam not in families:
            raise PricingError(f"{where}: family {fam!r} is not defined (families: {', '.join(sorted(families))})")
        model_family[mid], model_name[mid] = fam, m.get("name", mid)
        for key in m:
            if key in ("family", "name"):
                continue
            if key not in KINDS:
                raise PricingError(f"{where}: unknown key {key!r} (expected family, name, {', '.join(KINDS)})")
            r, rw = m[key], f"{where}.{key}"
            rows[(mid, key)] = replace(_row(mid, key, r, rw), tiers=MappingProxyType(
                {t: _row(mid, key, r[t], f"{rw}.{t}") for t in TIER_KEYS if t in r}))
    bt = raw.get("batch", {})
    batch_cache = bt.get("cache_pricing", "stacked") if isinstance(bt, dict) else bt
    if batch_cache not in BATCH_CACHE:
        raise PricingError(f"{path}: batch.cache_pricing must be one of {', '.join(BATCH_CACHE)}, "
                           f"got {batch_cache!r}")
    return PriceTable(as_of=as_of, path=path, batch_cache=batch_cache, families=MappingProxyType(families),
                      model_family=MappingProxyType(model_family),
                      model_name=MappingProxyType(model_name), rows=MappingProxyType(rows))


@lru_cache(maxsize=None)
def default_table() -> PriceTable:
    """The shipped catalog, loaded once."""
    return table_from_dict(data.load(CATALOG_FILE), data.path(CATALOG_FILE))


# ---------------------------------------------------------------- cost

def _tokens(usage: Mapping[str, Any], key: str) -> int:
    v = usage.get(key, 0) or 0
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
        raise PricingError(f"usage.{key} must be a token count >= 0, got {v!r}")
    return v


def _write_parts(usage: Mapping[str, Any], cache_ttl: str) -> list[tuple[str, int]]:
    """Cache-write tokens split by TTL.

    botocore >= 1.42.31 reports `cacheDetails` (1h entries first); when present it decides
    the TTL of each part. Tokens it does not account for (or all of them when it is absent
    or empty) are written at `cache_ttl`, the TTL the request asked for.
    """
    total = _tokens(usage, "cacheWriteInputTokens")
    details = usage.get("cacheDetails") or ()
    parts: list[tuple[str, int]] = []
    for i, d in enumerate(details):
        ttl = d.get("ttl") if isinstance(d, Mapping) else None
        if ttl not in TTLS:
            raise PricingError(f"usage.cacheDetails[{i}].ttl must be one of {', '.join(TTLS)}, got {ttl!r}")
        parts.append((ttl, _tokens(d, "inputTokens")))
    rest = total - sum(n for _, n in parts)
    if rest < 0:
        raise PricingError(
            f"usage.cacheDetails accounts for {total - rest} write tokens but "
            f"cacheWriteInputTokens is {total}; expected the details to split that total"
        )
    if rest:
        parts.append((cache_ttl, rest))
    return parts


def breakdown(model_id: str, usage: Mapping[str, Any], *, cache_ttl: str = "5m",
              batch: bool = False, prices: PriceTable | None = None, tier: str | None = None) -> Breakdown:
    """USD of one call by bucket, from a Converse `usage` dict (token counts).

    `cache_ttl` ("5m" | "1h") prices cache writes that `usage.cacheDetails` does not split;
    `batch` applies the family's batch multiplier to every bucket; `prices` defaults to the
    shipped catalog (pass `default_table().with_overrides(...)` for a scenario's prices);
    `tier` is the Converse serviceTier the call was sent at (None: default).
    """
    if cache_ttl not in TTLS:
        raise PricingError(f"cache_ttl must be one of {', '.join(TTLS)}, got {cache_ttl!r}")
    table = prices if prices is not None else default_table()
    return _breakdown(table.price_at(model_id, tier), table.family_of(model_id), usage, cache_ttl, batch)


def _breakdown(row: Any, fam: Any, usage: Mapping[str, Any], cache_ttl: str, batch: bool,
               batch_cache: str = "stacked") -> Breakdown:
    if batch and batch_cache == "unstacked":
        usage = unstacked_usage(usage)
    scale = fam.batch if batch else 1.0
    p_in = row.input_per_mtok * scale / PER
    p_out = row.output_per_mtok * scale / PER
    write = sum(n * fam.write_mult(ttl) for ttl, n in _write_parts(usage, cache_ttl))
    return Breakdown(
        input=_tokens(usage, "inputTokens") * p_in,
        output=_tokens(usage, "outputTokens") * p_out,
        cache_read=_tokens(usage, "cacheReadInputTokens") * fam.cache_read * p_in,
        cache_write=write * p_in,
    )


def _on_demand(fam: Family, p_in: float, p_out: float, usage: Mapping[str, Any], cache_ttl: str) -> dict[str, float]:
    """`vars(_breakdown(...))` of an on-demand call whose usage has no `cacheDetails`:
    every cache write is at `cache_ttl`. The same float operations in the same order (so
    the same USD to the last bit), without the Breakdown dataclass or `_write_parts`'
    list, and `_tokens`' checks only for a count that is not a plain int >= 0 (that
    function then returns it or raises as before). Runs once per attempt."""
    w = usage.get("cacheWriteInputTokens", 0)
    if w.__class__ is not int or w < 0:
        w = _tokens(usage, "cacheWriteInputTokens")
    # the TTL's write price next, as _breakdown asks for it: the same error first
    mult = fam.write_mult(cache_ttl) if w else 0
    i = usage.get("inputTokens", 0)
    if i.__class__ is not int or i < 0:
        i = _tokens(usage, "inputTokens")
    o = usage.get("outputTokens", 0)
    if o.__class__ is not int or o < 0:
        o = _tokens(usage, "outputTokens")
    r = usage.get("cacheReadInputTokens", 0)
    if r.__class__ is not int or r < 0:
        r = _tokens(usage, "cacheReadInputTokens")
    # _breakdown sums the write parts from 0: with no part that is the int 0
    cache_write = (w * mult if w else 0) * p_in
    inp, out, cache_read = i * p_in, o * p_out, r * fam.cache_read * p_in
    return {"input": inp, "output": out, "cache_read": cache_read, "cache_write": cache_write,
            "total": inp + out + cache_read + cache_write}


def unstacked_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """`usage` with its cache reads and writes counted as plain input tokens: how a batch
    record is billed if the cache discount does not stack with batch ("unstacked")."""
    total_in = (_tokens(usage, "inputTokens") + _tokens(usage, "cacheReadInputTokens")
                + _tokens(usage, "cacheWriteInputTokens"))
    return {"inputTokens": total_in, "outputTokens": _tokens(usage, "outputTokens")}


def table_for(overrides: Iterable[Any] = ()) -> PriceTable:
    """The catalog with a scenario's `[pricing]` overrides applied (the catalog itself if none)."""
    overrides = tuple(overrides)
    return default_table().with_overrides(overrides) if overrides else default_table()


def pricer(table: PriceTable) -> Callable[..., dict[str, float]]:
    """`price(model_id, usage, cache_ttl, tier=None, *, batch=None) -> {input, output,
    cache_read, cache_write, total}` in USD, as breakdown() computes it. `batch`: None for an
    on-demand call, "stacked" or "unstacked" (BATCH_CACHE) for a batch record, priced at the
    family's batch multiplier; `price.batch_cache` is the catalog's assumption. It runs once
    per attempt, so the catalog row, family and per-token prices are looked up once per
    (model id, tier), and an on-demand call's usage without `cacheDetails` (a call that
    writes nothing to the cache: the emulator and Bedrock send the details with a write)
    is priced by `_on_demand`, not through a Breakdown."""
    rows: dict[tuple[str, str | None], tuple[Any, Any, float, float]] = {}

    def price(model_id: str, usage: Mapping[str, Any], cache_ttl: str, tier: str | None = None, *,
              batch: str | None = None) -> dict[str, float]:
        rf = rows.get((model_id, tier))
        if rf is None:
            row = table.price_at(model_id, tier)
            # the same expressions as _breakdown's at scale 1.0, so the same floats
            rf = rows[model_id, tier] = (row, table.family_of(model_id), row.input_per_mtok * 1.0 / PER,
                                         row.output_per_mtok * 1.0 / PER)
        if cache_ttl not in TTLS:
            raise PricingError(f"cache_ttl must be one of {', '.join(TTLS)}, got {cache_ttl!r}")
        if batch is None and not usage.get("cacheDetails"):
            return _on_demand(rf[1], rf[2], rf[3], usage, cache_ttl)
        if batch is not None and batch not in BATCH_CACHE:
            raise PricingError(f"batch must be one of {', '.join(BATCH_CACHE)}, got {batch!r}")
        return vars(_breakdown(rf[0], rf[1], usage, cache_ttl, batch is not None, batch or "stacked"))

    price.batch_cache = table.batch_cache  # type: ignore[attr-defined]
    return price


def cost(model_id: str, usage: Mapping[str, Any], *, cache_ttl: str = "5m",
         batch: bool = False, prices: PriceTable | None = None, tier: str | None = None) -> float:
    """USD of one call; see breakdown() for the arguments."""
    return breakdown(model_id, usage, cache_ttl=cache_ttl, batch=batch, prices=prices, tier=tier).total


def format_usd(usd: float, *, cents_from: float = 10.0) -> str:
    """Dollars as a person reads them: four decimals below `cents_from` ("$0.8893"), whole
    cents from there on, with thousands separators ("$1,234.50"). Reports use the default;
    a plan's estimates switch to cents from $1 (`cents_from=1`)."""
    return f"${usd:,.4f}" if abs(usd) < cents_from else f"${usd:,.2f}"
