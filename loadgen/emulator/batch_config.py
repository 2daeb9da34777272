"""Batch inference quotas and the job-duration model: the `[batch]` table of
loadgen/catalog/data/emulator.toml (sources and ASSUMPTIONS are written there).

Every error names the dotted key, e.g. `emulator.batch.quotas.concurrent_jobs: expected a
positive integer, got 0`. Unknown keys are errors.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

from loadgen.catalog import data
from loadgen.catalog.profiles import base_id

DEFAULTS_FILE = "emulator.toml"


@dataclass(frozen=True)
class BatchQuotas:
    """Bedrock's batch quotas for one model (records; bytes; jobs)."""

    min_records_per_job: int
    records_per_file: int
    records_per_job: int
    file_size_bytes: int
    job_size_bytes: int
    concurrent_jobs: int


@dataclass(frozen=True)
class BatchTiming:
    """Time in each status, scenario seconds; records_per_minute: processing speed."""

    submitted_s: float
    validation_s: float
    queue_wait_s: float
    records_per_minute: float
    stopping_s: float


@dataclass(frozen=True)
class BatchConfig:
    timing_name: str
    default_timeout_hours: int
    quotas: BatchQuotas
    quota_models: tuple[tuple[str, BatchQuotas], ...]     # (base model id, quotas)
    timing: BatchTiming
    timing_models: tuple[tuple[str, BatchTiming], ...]    # (base model id, timing)

    def quotas_for(self, model_id: str) -> BatchQuotas:
        """Quotas of the base model behind any id form (bare, geo, global)."""
        return dict(self.quota_models).get(base_id(model_id), self.quotas)

    def timing_for(self, model_id: str) -> BatchTiming:
        return dict(self.timing_models).get(base_id(model_id), self.timing)

    @classmethod
    def load(cls, timing: str | None = None, overrides: Mapping | None = None) -> "BatchConfig":
        """The shipped [batch] table, `overrides` (same keys) merged over it; `timing`
        picks a preset ("realistic", "fast") over the table's own choice. Raises
        ValueError naming `emulator.batch.<key>`."""
        t = _merge(data.load(DEFAULTS_FILE)["batch"], overrides or {})
        if timing is not None:
            t["timing"] = timing
        return _build(t)


def _fail(key: str, expected: str, got: Any) -> None:
    raise ValueError(f"emulator.batch.{key}: expected {expected}, got {got!r}")


def _table(v: Any, key: str, allowed: tuple[str, ...] | None) -> Mapping:
    if not isinstance(v, Mapping):
        _fail(key, "a table", v)
    for k in v:
        if allowed is not None and k not in allowed:
            raise ValueError(f"emulator.batch.{key + '.' if key else ''}{k}: unknown key "
                             f"(expected one of {', '.join(allowed)})")
    return v


def _merge(base: Mapping, over: Mapping) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def _int(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        _fail(key, "a positive integer", v)
    return int(v)


def _num(v: Any, key: str, *, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (positive and v == 0):
        _fail(key, "a number > 0" if positive else "a number >= 0", v)
    return float(v)


_QUOTA_KEYS = tuple(f.name for f in fields(BatchQuotas))
_TIMING_KEYS = tuple(f.name for f in fields(BatchTiming))


def _quotas(t: Mapping, key: str, base: BatchQuotas | None) -> BatchQuotas:
    vals = {}
    for k in _QUOTA_KEYS:
        if k in t or base is None:
            vals[k] = _int(t.get(k), f"{key}.{k}")
        else:
            vals[k] = getattr(base, k)
    return BatchQuotas(**vals)


def _timing(t: Mapping, key: str, base: BatchTiming | None) -> BatchTiming:
    vals = {}
    for k in _TIMING_KEYS:
        if k in t or base is None:
            vals[k] = _num(t.get(k), f"{key}.{k}", positive=(k == "records_per_minute"))
        else:
            vals[k] = getattr(base, k)
    return BatchTiming(**vals)


def _build(t: Mapping) -> BatchConfig:
    _table(t, "", ("timing", "default_timeout_hours", "quotas", "timing_presets"))
    q = _table(t["quotas"], "quotas", (*_QUOTA_KEYS, "models"))
    quotas = _quotas(q, "quotas", None)
    qm = _table(q.get("models", {}), "quotas.models", None)
    quota_models = tuple((m, _quotas(_table(v, f'quotas.models."{m}"', _QUOTA_KEYS),
                                     f'quotas.models."{m}"', quotas)) for m, v in qm.items())
    presets = _table(t["timing_presets"], "timing_presets", None)
    name = t["timing"]
    if name not in presets:
        _fail("timing", "one of " + ", ".join(repr(p) for p in presets), name)
    key = f"timing_presets.{name}"
    p = _table(presets[name], key, (*_TIMING_KEYS, "models"))
    timing = _timing(p, key, None)
    tm = _table(p.get("models", {}), f"{key}.models", None)
    timing_models = tuple((m, _timing(_table(v, f'{key}.models."{m}"', ("queue_wait_s", "records_per_minute")),
                                      f'{key}.models."{m}"', timing)) for m, v in tm.items())
    hours = t["default_timeout_hours"]
    if isinstance(hours, bool) or not isinstance(hours, int) or not 24 <= hours <= 168:
        # botocore: timeoutDurationInHours min 24, max 168
        _fail("default_timeout_hours", "an integer from 24 to 168", hours)
    return BatchConfig(timing_name=name, default_timeout_hours=hours, quotas=quotas,
                       quota_models=quota_models, timing=timing, timing_models=timing_models)
