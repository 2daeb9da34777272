"""The JSON documents `--format json` prints: one per command, plain values only.

    run_document(result)       run / simulate: summary.json as written, the results path,
                               the threshold verdicts and the exit code
    sweep_document(result)     simulate --sweep: sweep.json as written, and the parent path
    maxrate_document(result)   simulate --find-max-rate: maxrate.json as written, and its path
    plan_document(plan)        validate: the plan (per-arm requests, peaks, costs in USD)
    catalog_document(table)    pricing: the price catalog in force (USD per 1M tokens)
    calibrate_document(result) calibrate: the fitted latency keys, the fit's quality, the table

Their top-level keys are a contract, listed in docs/results-format.md: add freely,
rename none. Figures keep the units of the files they come from.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

from loadgen.api.plan import ArmPlan, Plan
from loadgen.api.result import MaxRateResult, RunResult, SweepResult
from loadgen.catalog.pricing import Price, PriceTable
from loadgen.scenario.thresholds import format_results

if TYPE_CHECKING:  # api.calibrate loads the fit and its plot: only `calibrate` needs them
    from loadgen.api.calibrate import CalibrateResult


def run_document(res: RunResult, command: str) -> dict[str, Any]:
    """`run` / `simulate` (command names which): `summary` is summary.json as written."""
    return {
        "kind": command,
        "results_dir": str(res.path),
        "exit_code": res.exit_code,
        "interrupted": res.interrupted,
        "summary": res.summary,
        "thresholds": [r.to_dict() for r in res.verdicts],
        "thresholds_failed": sum(r.failed for r in res.verdicts),
        "thresholds_text": format_results(res.verdicts),
        "report": str(res.report) if res.report is not None else None,
        "behind_schedule": list(res.behind),
        "target_error": str(res.target_error) if res.target_error is not None else None,
        "batch_leftovers": list(res.batch_leftovers),
        "warnings": list(res.warnings),
    }


def sweep_document(res: SweepResult) -> dict[str, Any]:
    """`simulate --sweep`: `sweep` is sweep.json as written (rows, points, crossovers)."""
    return {"kind": "sweep", "results_dir": str(res.path), "exit_code": res.exit_code,
            "interrupted": res.interrupted, "sweep": res.summary, "warnings": list(res.warnings)}


def maxrate_document(res: MaxRateResult) -> dict[str, Any]:
    """`simulate --find-max-rate`: `maxrate` is maxrate.json as written."""
    return {"kind": "find-max-rate", "results_dir": str(res.path), "exit_code": res.exit_code,
            "interrupted": res.interrupted, "maxrate": res.summary}


def _arm_plan(a: ArmPlan) -> dict[str, Any]:
    arm = a.arm
    d: dict[str, Any] = {"name": arm.name, "model_id": arm.model_id, "profile": arm.profile, "mode": arm.mode,
                         "cache": arm.cache, "cache_ttl": arm.cache_ttl, "stream": arm.stream,
                         "max_tokens": arm.max_tokens, "max_tokens_set": arm.max_tokens_set,
                         "service_tier": arm.service_tier}
    d.update({f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name != "arm"})
    d.update(per_1000_cold_usd=a.per_1000_cold, per_1000_warm_usd=a.per_1000_warm,
             per_1000_expected_usd=a.per_1000_expected)
    return d


def plan_document(p: Plan, prefix_sizes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`validate`: the plan `loadgen validate` prints, as values (tokens are counts, costs
    USD, peaks per minute). `prefix_sizes`: `--target aws`'s CountTokens figures per arm."""
    sc = p.scenario
    doc: dict[str, Any] = {
        "kind": "plan",
        "scenario": sc.name, "path": sc.path, "description": sc.description,
        "duration_s": sc.duration, "seed": sc.seed,
        "target": {"kind": sc.target.kind, "region": sc.target.region, "endpoint_url": sc.target.endpoint_url,
                   "time_scale": sc.target.time_scale, "max_in_flight": sc.target.max_in_flight},
        "loop": "closed" if sc.sessions is not None else "open",
        "traffic": p.traffic, "sessions": p.sessions, "requests_per_arm": p.requests, "peak_rpm": p.peak_rpm,
        "sample": p.sample, "estimated": p.sample < 1,
        "thresholds": [{"expr": t.expr, "arm": t.arm, "line": t.line} for t in sc.thresholds],
        "arms": [_arm_plan(a) for a in p.arms],
        "prices_note": p.prices_note,
        "warnings": list(sc.warnings),
    }
    if prefix_sizes is not None:
        doc["prefix_sizes"] = {name: dataclasses.asdict(s) for name, s in prefix_sizes.items()}
    return doc


def _price(row: Price) -> dict[str, Any]:
    return {"input_per_mtok": row.input_per_mtok, "output_per_mtok": row.output_per_mtok,
            "source": row.source, "verified": row.verified, "overridden": row.overridden, "note": row.note}


def catalog_document(table: PriceTable) -> dict[str, Any]:
    """`pricing`: every row of the catalog in force (USD per 1M tokens; cache and batch
    prices as multiples of the input price, per family), overrides applied."""
    rows = []
    for (mid, kind), row in sorted(table.rows.items()):
        rows.append({"model_id": mid, "name": table.model_name.get(mid), "family": table.model_family.get(mid),
                     "profile": kind, **_price(row),
                     "tiers": {tier: _price(t) for tier, t in row.tiers.items()}})
    return {
        "kind": "pricing", "as_of": table.as_of.isoformat(), "path": str(table.path),
        "unit": "USD per 1M tokens", "batch_cache": table.batch_cache,
        "families": {name: {"cache_read": f.cache_read, "cache_write": dict(f.cache_write), "batch": f.batch,
                            "source": f.source, "verified": f.verified, "note": f.note}
                     for name, f in table.families.items()},
        "models": rows,
    }


def calibrate_document(r: "CalibrateResult") -> dict[str, Any]:
    """`calibrate`: every latency key (fitted or its default kept, seconds or per-second
    units as in the table), the fit's quality, what was left out and why, the
    `[emulator.latency]` table as text and where the files went."""
    cal = r.calibration
    return {
        "kind": "calibrate", "model": cal.model, "caller_region": cal.caller_region,
        "cross_basis": cal.cross_basis,
        "params": [{"key": p.key, "value": p.value, "default": p.default, "fitted": p.fitted,
                    "stderr": p.stderr, "note": p.note} for p in cal.params],
        "latency": cal.latency(),
        "used": cal.used, "speed_n": cal.speed_n,
        "ttft": dataclasses.asdict(cal.ttft), "e2e": dataclasses.asdict(cal.e2e),
        "excluded": dict(cal.excluded),
        "unidentified": [{"key": k, "why": why} for k, why in cal.unidentified],
        "other_models": dict(cal.other_models),
        "base_by_region": [{"region": g, "n": n, "median_s": m} for g, n, m in cal.base_by_region],
        "base_by_profile": [{"profile": g, "n": n, "median_s": m} for g, n, m in cal.base_by_profile],
        "table": r.toml,
        "out": str(r.out) if r.out is not None else None,
        "plot": str(r.plot) if r.plot is not None else None,
    }
