"""Model id <-> inference-profile kind, and the Regions a profile routes to.

Three kinds, as Bedrock names them:
  region  the bare model id, served by the caller's Region (that Region's quota)
  geo     `us.` / `eu.` / `apac.` / `jp.` / `au.` + id: routes across that geography
  global  `global.` + id: routes across commercial Regions worldwide
Destination lists are data (loadgen/catalog/data/profiles.toml) with their source.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from loadgen.catalog import data

ProfileKind = Literal["region", "geo", "global"]
KINDS: tuple[str, ...] = ("region", "geo", "global")


@lru_cache(maxsize=None)
def _table() -> dict:
    return data.load("profiles.toml")


@lru_cache(maxsize=1024)  # called several times per request (emulator, pricing); a run uses few ids
def split(model_id: str) -> tuple[ProfileKind, str | None, str]:
    """(kind, prefix or None, bare id) of any model id form."""
    head, dot, rest = model_id.partition(".")
    if dot and head == "global":
        return "global", "global", rest
    if dot and head in _table()["geo"]:
        return "geo", head, rest
    return "region", None, model_id


def kind_of(model_id: str) -> ProfileKind:
    return split(model_id)[0]


def base_id(model_id: str) -> str:
    return split(model_id)[2]


_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d+$")


def region_problem(region: str) -> str | None:
    """Why `region` is not an AWS Region name (None if it looks like one, e.g. us-east-1)."""
    if _REGION.match(region):
        return None
    return f"{region!r} is not an AWS Region name (expected something like \"us-east-1\" or \"eu-west-3\")"


def geo_prefix_for_region(region: str) -> str:
    for start, prefix in _table()["source_prefix"].items():
        if region.startswith(start):
            return prefix
    raise ValueError(f"no geographic inference profile is known for Region {region!r}")


def with_profile(model_id: str, kind: str, region: str) -> str:
    """Rewrite any id form to the given profile kind, as called from `region`."""
    bare = base_id(model_id)
    if kind == "region":
        return bare
    if kind == "global":
        return f"global.{bare}"
    if kind == "geo":
        return f"{geo_prefix_for_region(region)}.{bare}"
    raise ValueError(f"unknown profile kind {kind!r} (expected one of {', '.join(KINDS)})")


def callable_from(model_id: str, source_region: str) -> bool:
    """May `model_id`'s profile be called from `source_region`? A geo profile only from
    its `sources` (profiles.toml); a bare id or global profile from any Region (whether
    the model is served there is the catalog's business)."""
    kind, prefix, _ = split(model_id)
    if kind != "geo":
        return True
    t = _table()["geo"][prefix]
    return source_region in t.get("sources", t["regions"])


def destination_regions(model_id: str, source_region: str) -> tuple[str, ...]:
    """Regions a call to `model_id` from `source_region` may be served in.

    The source Region comes first when it is a destination (a global profile's always
    is): Bedrock prefers it and spills over under load. A geo source that is not one of
    the geography's destinations (ca-central-1 for `us.`) routes to the destinations.
    """
    kind, prefix, _ = split(model_id)
    if kind == "region":
        return (source_region,)
    regions = list(_table()["global"]["regions"] if kind == "global" else _table()["geo"][prefix]["regions"])
    if source_region in regions:
        regions.remove(source_region)
    elif kind == "geo":
        return tuple(regions)
    return (source_region, *regions)
