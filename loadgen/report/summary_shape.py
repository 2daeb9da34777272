"""The shape of summary.json as the report reads it: `validate_summary`.

summary.json is read by people's tools and may be edited or truncated by hand: anything
the report reads is checked first, so a malformed file is a clear error (exit 2), never
a traceback. docs/results-format.md is the contract.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

_NUMBER, _INT, _STR, _DICT, _LIST = "a number", "an integer", "a string", "an object", "a list"
_ARM_SHAPE: dict[str, tuple[str, bool]] = {   # key -> (kind, required)
    "requests": (_DICT, True), "cache": (_DICT, True), "tokens": (_DICT, True), "cost_usd": (_DICT, True),
    "latency_ms": (_DICT, True), "errors": (_DICT, False), "gap_buckets": (_LIST, False),
    "rpm_peak": (_NUMBER, False), "tpm_peak": (_NUMBER, False), "model_id": (_STR, False),
    "cache_ttl": (_STR, False), "profile": (_STR, False),
}
_SUB_SHAPE: dict[str, dict[str, tuple[str, bool]]] = {
    "requests": {k: (_INT, True) for k in ("sent", "ok", "throttled", "error", "timeout", "retries")},
    "cache": {"cold": (_INT, True), "warm": (_INT, True), "none": (_INT, True), "warm_ratio": (_NUMBER, True),
              "mismatch": (_DICT, False)},
    "cost_usd": {"total": (_NUMBER, True), "per_1000": (_NUMBER, True),
                 **{k: (_NUMBER, False) for k in ("input", "output", "cache_read", "cache_write")}},
}
_BUCKET_SHAPE = {"label": (_STR, True), "warm": (_INT, True), "cold": (_INT, True), "none": (_INT, False),
                 "warm_ratio": (_NUMBER, True), "lo_s": (_NUMBER, True)}
_TOP_SHAPE = {"arms": (_DICT, True), "scenario": (_STR, False), "target": (_STR, False), "clock": (_STR, False),
              "scenario_s": (_NUMBER, False), "wall_s": (_NUMBER, False), "time_scale": (_NUMBER, False),
              "rpm_peak": (_NUMBER, False), "tpm_peak": (_NUMBER, False), "stopped": (_STR, False)}


def _is(kind: str, v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return {_NUMBER: isinstance(v, (int, float)), _INT: isinstance(v, int), _STR: isinstance(v, str),
            _DICT: isinstance(v, dict), _LIST: isinstance(v, list)}[kind]


def _check_shape(obj: Mapping[str, Any], shape: Mapping[str, tuple[str, bool]], where: str) -> None:
    for key, (kind, required) in shape.items():
        if key not in obj:
            if required:
                raise ValueError(f"{where}{key} is missing; expected {kind}")
            continue
        v = obj[key]
        if v is None and kind == _NUMBER and not required:
            continue
        if not _is(kind, v):
            raise ValueError(f"{where}{key} is {json.dumps(v)[:40]}; expected {kind}")


def validate_summary(summary: Any, source: str = "summary.json") -> None:
    """ValueError naming the first key of `summary` (a summary.json dict) the report cannot
    read: a missing required figure or a value of the wrong type."""
    if not isinstance(summary, dict):
        raise ValueError(f"{source}: expected a JSON object with \"arms\", got {type(summary).__name__}")
    _check_shape(summary, _TOP_SHAPE, f"{source}: ")
    for name, arm in summary["arms"].items():
        where = f"{source}: arms.{name}"
        if not isinstance(arm, dict):
            raise ValueError(f"{where} is {json.dumps(arm)[:40]}; expected an object of figures")
        _check_shape(arm, _ARM_SHAPE, where + ".")
        for sub, shape in _SUB_SHAPE.items():
            _check_shape(arm[sub], shape, f"{where}.{sub}.")
        for k, v in arm["tokens"].items():
            if not _is(_NUMBER, v):
                raise ValueError(f"{where}.tokens.{k} is {json.dumps(v)[:40]}; expected a number")
        for k, v in arm.get("errors", {}).items():
            if not _is(_INT, v):
                raise ValueError(f"{where}.errors.{k} is {json.dumps(v)[:40]}; expected an integer")
        lat = arm["latency_ms"]
        for metric in ("ttft", "e2e"):
            if metric not in lat:
                raise ValueError(f"{where}.latency_ms.{metric} is missing; expected an object of percentiles")
        for metric, stats in lat.items():
            if not isinstance(stats, dict):
                raise ValueError(f"{where}.latency_ms.{metric} is {json.dumps(stats)[:40]}; expected an object")
            for k, v in stats.items():
                if v is not None and not _is(_NUMBER, v):
                    raise ValueError(f"{where}.latency_ms.{metric}.{k} is {json.dumps(v)[:40]}; "
                                     "expected a number of ms or null")
        mm = arm["cache"].get("mismatch", {})
        if not isinstance(mm, dict):
            raise ValueError(f"{where}.cache.mismatch: expected an object")
        _check_shape(mm, {"total": (_INT, False), "by_pair": (_DICT, False)}, f"{where}.cache.mismatch.")
        for i, b in enumerate(arm.get("gap_buckets", [])):
            if not isinstance(b, dict):
                raise ValueError(f"{where}.gap_buckets[{i}] is {json.dumps(b)[:40]}; expected an object")
            _check_shape(b, _BUCKET_SHAPE, f"{where}.gap_buckets[{i}].")
            if b.get("hi_s") is not None and not _is(_NUMBER, b["hi_s"]):
                raise ValueError(f"{where}.gap_buckets[{i}].hi_s: expected a number or null")
