"""A summary rebuilt from requests.jsonl, for a run killed before it wrote summary.json.

requests.jsonl reaches the kernel at least every second (results/directory.py), so after
SIGKILL every attempt but those of the last second is on disk while summary.json and
histograms/ are not. Folding those records through
the same `loadgen.results.metrics.Metrics` the runner uses gives the same figures a finished
run would have written for those attempts (Metrics rounds times to the microsecond as
requests.jsonl stores them, so latency figures are identical). The run facts say plainly
that the run did not finish (`stopped`); `report` prints it and never writes
summary.json for it; `compare` reads the same rebuilt summary.

The clock comes from run.json, which `run` and `simulate` write before the first
request (the clock they picked, after flags such as `--time-scale`). A directory
without it (written before run.json existed) falls back to the copied scenario.toml by
the rule `loadgen run` applies: `aws` and an `endpoint_url` run on the real clock, the
built-in emulator on the warp clock at `[target] time_scale`. `clock_source` says which it was.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from loadgen._version import __version__
from loadgen.catalog.pricing import PricingError, pricer, table_for
from loadgen.engine.record import Attempt
from loadgen.results.metrics import ArmInfo, Metrics

KILLED = "killed (rebuilt from requests.jsonl)"
_FIELDS = {f.name for f in dataclasses.fields(Attempt)}


def _arm_info(name: str, record: Mapping[str, Any], declared: Mapping[str, Any]) -> ArmInfo:
    """The arm as the scenario declares it, else as its first record says (the scenario
    copy is unreadable)."""
    if name in declared:
        return ArmInfo.from_arm(declared[name])
    return ArmInfo(name, str(record.get("model_id") or "?"), str(record.get("profile") or "?"), "unknown")


def _usage(a: Attempt) -> dict[str, Any]:
    """The Converse `usage` an attempt record was priced from (1h cache writes first, as
    botocore reports `cacheDetails`)."""
    details = [d for d in ({"ttl": "1h", "inputTokens": a.cache_write_1h},
                           {"ttl": "5m", "inputTokens": a.cache_write_5m}) if d["inputTokens"]]
    return {"inputTokens": a.input_tokens, "outputTokens": a.output_tokens,
            "cacheReadInputTokens": a.cache_read, "cacheWriteInputTokens": a.cache_write,
            "cacheDetails": details}


def attempt_from_record(r: Mapping[str, Any]) -> Attempt:
    """The Attempt of one requests.jsonl record (keys Attempt does not have are ignored);
    TypeError when it is not an attempt record."""
    return Attempt(**{k: v for k, v in r.items() if k in _FIELDS})


def cost_buckets(scenario: Any):
    """USD by cost bucket for one attempt, priced as the run priced it: the same pricer
    (`pricing.pricer` over the scenario's `[pricing]` overrides) at the arm's cache TTL and
    service tier. None when the scenario is unknown (then only totals, from cost_usd)."""
    if scenario is None:
        return None
    price = pricer(table_for(scenario.pricing))

    def buckets(a: Attempt, info: ArmInfo) -> dict[str, float] | None:
        ttl = info.cache_ttl if info.cache_ttl in ("5m", "1h") else "5m"
        try:
            if a.batch_status is not None:  # a batch record: the batch price, as the run priced it
                return price(a.model_id, _usage(a), ttl, batch=price.batch_cache) if a.status == "ok" else None
            return price(a.model_id, _usage(a), ttl, info.service_tier)
        except PricingError:
            return None

    return buckets


def rebuild_summary(records: Iterable[Mapping[str, Any]], scenario: Any = None, *,
                    results_dir: str | Path = "", run_facts: Mapping[str, Any] | None = None
                    ) -> tuple[dict, Metrics]:
    """(summary.json dict, the Metrics holding its histograms) from requests.jsonl records.

    `records`: any iterable, read once (`load_attempts` streams the file: memory stays
    that of the histograms and counters, not of the attempts). `scenario`: the copied
    scenario.toml parsed (arm order, cache TTLs, prices, run facts), or None. `run_facts`:
    run.json (`results.load_run_facts`), or None. ValueError names the record that is
    not an attempt. Arms that sent something come in scenario order (first-seen order
    for those it does not declare).
    """
    declared = {a.name: a for a in getattr(scenario, "arms", ())}
    per_arm: dict[str, tuple[ArmInfo, Metrics]] = {}   # one Metrics per arm, merged in order at the end
    price = cost_buckets(scenario)
    n = 0
    wall_lo, wall_hi, scenario_s = math.inf, -math.inf, 0.0
    for n, r in enumerate(records, 1):
        try:
            a = attempt_from_record(r)
        except TypeError as e:
            raise ValueError(f"requests.jsonl record {n}: not an attempt record ({e})") from None
        arm = per_arm.get(a.arm)
        if arm is None:
            info = _arm_info(a.arm, r, declared)
            arm = per_arm[a.arm] = (info, Metrics([info]))
        arm[1].record(a, price(a, arm[0]) if price else None)
        if r.get("wall_start"):
            w = float(r["wall_start"])
            wall_lo, wall_hi = min(wall_lo, w), max(wall_hi, w)
        scenario_s = max(scenario_s, float(r.get("end") or 0.0))
    order = [name for name in declared if name in per_arm] + [name for name in per_arm if name not in declared]
    metrics = Metrics([])
    for name in order:
        metrics.merge(per_arm[name][1])
    facts: dict[str, Any] = {
        "loadgen_version": __version__,
        "scenario": getattr(scenario, "name", None) or Path(results_dir).name or "?",
        "target": scenario.target.kind if scenario is not None else "unknown",
        **_clock_facts(scenario, run_facts),
        "seed": getattr(scenario, "seed", None),
        # the last send minus the first: the run's own wall time is lost with it
        "wall_s": round(wall_hi - wall_lo, 3) if wall_hi >= wall_lo else 0.0,
        "scenario_s": round(scenario_s, 3),
        "duration_s": getattr(scenario, "duration", None),
        "region": scenario.target.region if scenario is not None else None,
        "stopped": KILLED,
        "rebuilt": True,
    }
    return metrics.summary(facts), metrics


def _clock_facts(scenario: Any, run_facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`clock`, `time_scale` and `clock_source`: from run.json when the run wrote one,
    else for a run of `scenario` by the rule `api/setup.py` applies (None: unknown)."""
    if run_facts and isinstance(run_facts.get("clock"), str):
        scale = run_facts.get("time_scale")
        return {"clock": run_facts["clock"],
                "time_scale": float(scale) if isinstance(scale, (int, float)) and not isinstance(scale, bool) else 1.0,
                "clock_source": "run.json"}
    if scenario is None:
        return {"clock": "unknown", "clock_source": "unknown: no run.json and scenario.toml could not be read"}
    target = scenario.target
    if target.kind == "aws" or target.endpoint_url:  # api/setup.py real_clock_reason: a target keeping its own time
        kind, scale = "real", 1.0
    else:
        kind, scale = "warp", float(target.time_scale)
    return {"clock": kind, "time_scale": scale, "clock_source": "scenario.toml"}
