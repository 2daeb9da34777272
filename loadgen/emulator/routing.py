"""Where a request goes: the model id as called (bare, geo, global, or an ARN) checked
against the catalog and the caller's Region, and the serving Region chosen among the id's
destinations by their load (each Region's own capacity), brown-outs and queueing.
"""

from __future__ import annotations

from loadgen.catalog import profiles
from loadgen.catalog.models import ModelInfo, UnknownModel, lookup
from loadgen.emulator.config import Brownout, EmulatorConfig
from loadgen.emulator.errors import BedrockError, error, quota_value, validation
from loadgen.emulator.window import Charge, Window, Windows


def on_demand_unsupported(model_id: str) -> str:
    """Bedrock's ValidationException text for a bare id the Region does not serve on demand."""
    return (f"Invocation of model ID {model_id} with on-demand throughput isn\u2019t supported. "
            "Retry your request with the ID or ARN of an inference profile that contains this model.")


def resolve_model_id(model_id: str) -> str:
    """The model id inside an inference-profile or foundation-model ARN; else unchanged."""
    if model_id.startswith("arn:"):
        return model_id.rsplit("/", 1)[-1]
    return model_id


def resolve(model_id: str, src: str) -> tuple[str, ModelInfo] | BedrockError:
    """(model id without its ARN, catalog entry) of an id called from Region `src`, or
    Bedrock's ValidationException for an id that Region cannot call."""
    mid = resolve_model_id(model_id)
    try:
        info = lookup(mid)
    except UnknownModel:
        return validation(f"The provided model identifier is invalid. ({model_id!r} is not in the "
                          f"emulator's model catalog)")
    kind, prefix, _ = profiles.split(mid)
    if kind == "region" and not info.in_region_at(src):
        # Bedrock's answer for a model it serves through inference profiles only
        # (models.toml in_region); text as quoted in anthropics/anthropic-sdk-python#894,
        # U+2019 apostrophe included.
        return validation(on_demand_unsupported(mid))
    if kind == "geo" and (prefix not in info.geo_profiles or not profiles.callable_from(mid, src)):
        # Bedrock's text for a geo profile called from outside its geography: a `us.` id
        # from eu-west-3 in danny-avila/LibreChat#5001 (profiles.toml has the CONFLICT)
        return validation(f"The provided model identifier is invalid. (no {prefix}. inference profile "
                          f"for {info.base_id} callable from {src})")
    if kind == "global" and not info.global_profile:
        return validation(f"The provided model identifier is invalid. (no global inference profile "
                          f"for {info.base_id})")
    return mid, info


class Regions:
    """The serving Regions: the load on each (a window of tokens per (base model id,
    Region), against `routing.region_capacity_tpm`), brown-outs, queueing delay."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.load = Windows(config.window_s, config.window)
        self._destinations: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}

    def brownout(self, region: str, now: float) -> Brownout | None:
        """The brown-out of `region` at scenario time `now`, if one is on."""
        for b in self.config.faults.brownouts:
            if b.region == region and b.start_s <= now < b.end_s:
                return b
        return None

    def queue_s(self, util: float) -> float:
        """Extra ttft from queueing at Region utilisation `util` (seconds): 0 up to the
        knee, then quadratic up to `queue_max_s` at 100 %."""
        lat = self.config.latency
        if util <= lat.queue_knee or lat.queue_knee >= 1.0:
            return 0.0
        return lat.queue_max_s * min(1.0, (util - lat.queue_knee) / (1.0 - lat.queue_knee)) ** 2

    def route(self, mid: str, base: str, need: float, now: float, src: str) -> tuple[str, float] | BedrockError:
        """(serving Region, its utilisation after this request) or a regional throttle.

        ASSUMPTION (loadgen/catalog/data/emulator.toml, [routing]): the source Region serves while
        it stays at or under `spill_at` of its capacity (shipped below the queueing knee, so
        routing happens before the source Region's latency climbs); above that the request
        goes to the first destination still under `spill_at`; when every destination is
        over it, to the one with the least expected extra ttft (queueing + cross-Region
        time). So a profile with more destination Regions holds more load before any
        Region queues."""
        cap = self.config.region_capacity_tpm
        known = self._destinations.get((mid, src))
        if known is None:  # fixed by the catalog: worked out once per (model id, source Region)
            known = self._destinations[(mid, src)] = (profiles.kind_of(mid), profiles.destination_regions(mid, src))
        kind, regions = known
        if kind != "region" and self.config.faults.brownouts:
            # a profile steers around Regions in a brown-out (ASSUMPTION, documented)
            healthy = tuple(r for r in regions if self.brownout(r, now) is None)
            regions = healthy or regions
        if cap == 0:
            return regions[0], 0.0
        util = [(self.load[(base, r)].total(now) + need) / cap for r in regions]
        spill_at = self.config.spill_at
        if self.config.prefer_source:
            for r, u in zip(regions, util):
                if u <= spill_at:
                    return r, u
        else:
            i = min(range(len(regions)), key=lambda j: util[j])
            if util[i] <= spill_at:
                return regions[i], util[i]
        open_ = [j for j in range(len(regions)) if util[j] <= 1.0]
        if not open_:
            i = min(range(len(regions)), key=lambda j: util[j])
            return error("ThrottlingException", "Too many tokens, please wait before trying again. "
                         f"(no capacity left for {base} in {', '.join(regions)})",
                         served_region=regions[i], quota=quota_value("capacity", regions))
        cross = self.config.latency.cross_region_s
        i = min(open_, key=lambda j: (self.queue_s(util[j]) + (cross if regions[j] != src else 0.0),
                                      util[j]))
        return regions[i], util[i]

    def charge(self, base: str, served: str, reserve: int, now: float) -> list[tuple[Window, Charge]]:
        """Charge `reserve` tokens to the serving Region's load (when Regions have a capacity);
        returns the charges, which the end of the request corrects."""
        if not self.config.region_capacity_tpm:
            return []
        w = self.load[(base, served)]
        return [(w, w.add(now, reserve))]
