"""The model catalog (loadgen/data/models.toml) as frozen records.

Every model id form resolves here: bare (`anthropic.x`), geographic (`us.anthropic.x`)
and global (`global.anthropic.x`) all name the same ModelInfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from loadgen import data
from loadgen.profiles import base_id


class UnknownModel(KeyError):
    """A model id that is not in the catalog."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ModelInfo:
    base_id: str
    name: str
    family: str
    max_output_tokens: int
    cache_min_tokens: int
    cache_ttls: tuple[str, ...]
    max_cache_checkpoints: int
    output_burndown: float
    geo_profiles: tuple[str, ...]
    global_profile: bool
    context_window: int = 200_000   # tokens, input + output, per request

    def supports_ttl(self, ttl: str) -> bool:
        return ttl in self.cache_ttls


CATALOG_FILE = "models.toml"

# Cache TTLs a cachePoint can ask for, in seconds (Bedrock prompt-caching docs: 5 minutes
# by default, 1 hour where the model supports it); each use of an entry restarts it.
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


@lru_cache(maxsize=None)
def catalog() -> dict[str, ModelInfo]:
    raw = data.load(CATALOG_FILE)
    out = {}
    for mid, t in raw.items():
        out[mid] = ModelInfo(
            base_id=mid,
            name=t["name"],
            family=t["family"],
            max_output_tokens=int(t["max_output_tokens"]),
            cache_min_tokens=int(t["cache_min_tokens"]),
            cache_ttls=tuple(t["cache_ttls"]),
            max_cache_checkpoints=int(t["max_cache_checkpoints"]),
            output_burndown=float(t["output_burndown"]),
            geo_profiles=tuple(t["geo_profiles"]),
            global_profile=bool(t["global_profile"]),
            context_window=int(t["context_window"]),
        )
    return out


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
