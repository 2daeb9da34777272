"""A summary rebuilt from requests.jsonl, for a run killed before it wrote summary.json.

requests.jsonl is line-buffered (results.py), so after SIGKILL every completed attempt
is on disk while summary.json and histograms/ are not. Folding those records through
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
from pathlib import Path
from typing import Any, Mapping, Sequence

from loadgen._version import __version__
from loadgen.catalog.pricing import PricingError, pricer, table_for
from loadgen.engine.record import Attempt
from loadgen.results.metrics import ArmInfo, Metrics

KILLED = "killed (rebuilt from requests.jsonl)"
_FIELDS = {f.name for f in dataclasses.fields(Attempt)}


def _arm_infos(records: Sequence[Mapping[str, Any]], scenario: Any) -> list[ArmInfo]:
    """Arms that sent something, in scenario order (first-seen order when it is unknown)."""
    seen: dict[str, Mapping[str, Any]] = {}
    for r in records:
        seen.setdefault(r["arm"], r)
    declared = {a.name: a for a in getattr(scenario, "arms", ())}
    order = [n for n in declared if n in seen] + [n for n in seen if n not in declared]
    out = []
    for name in order:
        if name in declared:
            out.append(ArmInfo.from_arm(declared[name]))
        else:  # the scenario copy is unreadable: what the records themselves say
            r = seen[name]
            out.append(ArmInfo(name, str(r.get("model_id") or "?"), str(r.get("profile") or "?"), "unknown"))
    return out


def _usage(a: Attempt) -> dict[str, Any]:
    """The Converse `usage` an attempt record was priced from (1h cache writes first, as
    botocore reports `cacheDetails`)."""
    details = [d for d in ({"ttl": "1h", "inputTokens": a.cache_write_1h},
                           {"ttl": "5m", "inputTokens": a.cache_write_5m}) if d["inputTokens"]]
    return {"inputTokens": a.input_tokens, "outputTokens": a.output_tokens,
            "cacheReadInputTokens": a.cache_read, "cacheWriteInputTokens": a.cache_write,
            "cacheDetails": details}


def _cost_buckets(scenario: Any, infos: Sequence[ArmInfo]):
    """USD by cost bucket for one attempt, priced as the run priced it: the same pricer
    (`pricing.pricer` over the scenario's `[pricing]` overrides) at the arm's cache TTL and
    service tier. None when the scenario is unknown (then only totals, from cost_usd)."""
    if scenario is None:
        return None
    price = pricer(table_for(scenario.pricing))
    arms = {i.name: i for i in infos}

    def buckets(a: Attempt) -> dict[str, float] | None:
        info = arms[a.arm]
        ttl = info.cache_ttl if info.cache_ttl in ("5m", "1h") else "5m"
        try:
            if a.batch_status is not None:  # a batch record: the batch price, as the run priced it
                return price(a.model_id, _usage(a), ttl, batch=price.batch_cache) if a.status == "ok" else None
            return price(a.model_id, _usage(a), ttl, info.service_tier)
        except PricingError:
            return None

    return buckets


def rebuild_summary(records: Sequence[Mapping[str, Any]], scenario: Any = None, *,
                    results_dir: str | Path = "", run_facts: Mapping[str, Any] | None = None
                    ) -> tuple[dict, Metrics]:
    """(summary.json dict, the Metrics holding its histograms) from requests.jsonl records.

    `scenario`: the copied scenario.toml parsed (arm order, cache TTLs, prices, run facts),
    or None. `run_facts`: run.json (`results.load_run_facts`), or None. ValueError names
    the record that is not an attempt.
    """
    infos = _arm_infos(records, scenario)
    metrics = Metrics(infos)
    price = _cost_buckets(scenario, infos)
    for n, r in enumerate(records, 1):
        try:
            a = Attempt(**{k: v for k, v in r.items() if k in _FIELDS})
        except TypeError as e:
            raise ValueError(f"requests.jsonl record {n}: not an attempt record ({e})") from None
        metrics.record(a, price(a) if price else None)
    walls = [float(r["wall_start"]) for r in records if r.get("wall_start")]
    facts: dict[str, Any] = {
        "loadgen_version": __version__,
        "scenario": getattr(scenario, "name", None) or Path(results_dir).name or "?",
        "target": scenario.target.kind if scenario is not None else "unknown",
        **_clock_facts(scenario, run_facts),
        "seed": getattr(scenario, "seed", None),
        # the last send minus the first: the run's own wall time is lost with it
        "wall_s": round(max(walls) - min(walls), 3) if walls else 0.0,
        "scenario_s": round(max((float(r.get("end") or 0.0) for r in records), default=0.0), 3),
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
