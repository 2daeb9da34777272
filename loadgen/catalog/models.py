"""The model catalog (loadgen/catalog/data/models.toml) as frozen records.

Every model id form resolves here: bare (`anthropic.x`), geographic (`us.anthropic.x`)
and global (`global.anthropic.x`) all name the same ModelInfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from loadgen.catalog import data
from loadgen.catalog.profiles import base_id, callable_from


class UnknownModel(KeyError):
    """A model id that is not in the catalog."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ModelInfo:
    base_id: str
    name: str
    family: str
    max_output_tokens: int           # tokens; also what an omitted maxTokens reserves
    cache_min_tokens: int            # 0 when the model offers no caching
    cache_ttls: tuple[str, ...]      # () when the model offers no caching
    max_cache_checkpoints: int
    output_burndown: float
    geo_profiles: tuple[str, ...]
    global_profile: bool
    context_window: int = 200_000    # tokens, input + output, per request
    in_region: bool = True           # bare id served on demand in some Region
    in_region_regions: tuple[str, ...] = ()   # those Regions
    service_tiers: tuple[str, ...] = ("default",)
    count_tokens: bool = False       # bedrock-runtime CountTokens serves the model
    batch: bool = False              # batch inference (CreateModelInvocationJob) takes the model
    lifecycle: str = "active"        # active | legacy | deprecated
    eol: str = ""                    # ISO date AWS gives for a legacy model ("" if none)
    # content-block positions a breakpoint's cache lookup checks, itself included
    # (0: only the breakpoint itself; see models.toml for the sources)
    cache_lookback_blocks: int = 0

    @property
    def caching(self) -> bool:
        return bool(self.cache_ttls)

    def supports_ttl(self, ttl: str) -> bool:
        return ttl in self.cache_ttls

    def in_region_at(self, region: str) -> bool:
        """Is the bare id served on demand when called from `region`?"""
        return self.in_region and region in self.in_region_regions

    def profiles_from(self, region: str) -> list[str]:
        """The ids of this model callable from `region` (for messages): the bare id when
        it is served there on demand, the geo profiles whose geography holds `region`, global."""
        out = [self.base_id] if self.in_region_at(region) else []
        out += [f"{g}.{self.base_id}" for g in self.geo_profiles
                if callable_from(f"{g}.{self.base_id}", region)]
        if self.global_profile:
            out.append(f"global.{self.base_id}")
        return out


CATALOG_FILE = "models.toml"

# Cache TTLs a cachePoint can ask for, in seconds (Bedrock prompt-caching docs: 5 minutes
# by default, 1 hour where the model supports it); each use of an entry restarts it.
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@lru_cache(maxsize=None)
def catalog() -> dict[str, ModelInfo]:
    raw = data.load(CATALOG_FILE)
    return {mid: _info(mid, t) for mid, t in raw.items()}


def _info(mid: str, t: dict) -> ModelInfo:
    caches = t.get("cache", True)
    regions = tuple(t["in_region_regions"])
    if bool(t["in_region"]) != bool(regions):
        raise ValueError(f"{data.path(CATALOG_FILE)}: {mid}: in_region = {t['in_region']} but "
                         f"in_region_regions = {list(regions)} (a served model lists its Regions)")
    eol = t.get("eol")
    return ModelInfo(
        base_id=mid,
        name=t["name"],
        family=t["family"],
        max_output_tokens=int(t["max_output_tokens"]),
        cache_min_tokens=int(t["cache_min_tokens"]) if caches else 0,
        cache_ttls=tuple(t["cache_ttls"]) if caches else (),
        max_cache_checkpoints=int(t["max_cache_checkpoints"]) if caches else 0,
        cache_lookback_blocks=int(t.get("cache_lookback_blocks", 0)) if caches else 0,
        output_burndown=float(t["output_burndown"]),
        geo_profiles=tuple(t["geo_profiles"]),
        global_profile=bool(t["global_profile"]),
        context_window=int(t["context_window"]),
        in_region=bool(t["in_region"]),
        in_region_regions=regions,
        service_tiers=tuple(t["service_tiers"]),
        count_tokens=bool(t.get("count_tokens", False)),
        batch=bool(t.get("batch", False)),
        lifecycle=str(t["lifecycle"]),
        eol=eol.isoformat() if eol is not None else "",
    )


def lookup(model_id: str) -> ModelInfo:
    """ModelInfo for any id form; UnknownModel names the catalog file otherwise."""
    cat = catalog()
    info = cat.get(base_id(model_id))
    if info is None:
        known = ", ".join(sorted(cat))
        raise UnknownModel(
            f"unknown model id {model_id!r}: not in the model catalog {data.path(CATALOG_FILE)} "
            f"(known: {known})"
        )
    return info
