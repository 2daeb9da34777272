"""A batch arm's figures: jobs, records by outcome, queue wait, job duration, time to the
last result, and the bill both ways (cache pricing stacked with batch, or not).

Folded from the arm's attempts (one per record, loadgen.engine.batch_arm), so a summary
rebuilt from requests.jsonl and one merged from worker parts hold the same figures.
Seconds are scenario seconds; USD to 1e-9 as requests.jsonl stores them.
"""

from __future__ import annotations

import statistics
from typing import Any

from loadgen.catalog.pricing import default_table
from loadgen.engine.record import BATCH_RECORD_ERROR, Attempt


class BatchFigures:
    """Mutable accumulators of one batch arm (mergeable)."""

    __slots__ = ("jobs", "records", "ok", "failed", "not_completed", "stacked", "unstacked",
                 "last_result", "last_end")

    def __init__(self) -> None:
        # job id -> (final status, submit s, queue wait s or None, duration s or None)
        self.jobs: dict[str, tuple[str, float | None, float | None, float | None]] = {}
        self.records = self.ok = self.failed = self.not_completed = 0
        self.stacked = self.unstacked = 0.0
        self.last_result: float | None = None   # scenario s: the last ok record's result read
        self.last_end: float | None = None      # scenario s: the last record accounted for

    def record(self, a: Attempt) -> None:
        self.records += 1
        if a.status == "ok":
            self.ok += 1
            self.last_result = _max(self.last_result, round(a.end, 6))
        elif a.error_code == BATCH_RECORD_ERROR:
            self.failed += 1
        else:
            self.not_completed += 1
        self.last_end = _max(self.last_end, round(a.end, 6))
        self.stacked += round(a.cost_stacked_usd or 0.0, 9)
        self.unstacked += round(a.cost_unstacked_usd or 0.0, 9)
        if a.batch_job is not None:
            self.jobs[a.batch_job] = (a.batch_status or "?", a.batch_submit, a.queue_wait_s, a.job_s)

    def merge(self, o: "BatchFigures") -> None:
        self.jobs.update(o.jobs)
        self.records += o.records
        self.ok += o.ok
        self.failed += o.failed
        self.not_completed += o.not_completed
        self.stacked += o.stacked
        self.unstacked += o.unstacked
        self.last_result = _max(self.last_result, o.last_result)
        self.last_end = _max(self.last_end, o.last_end)

    def summary(self) -> dict[str, Any]:
        """summary.json `arms.<arm>.batch` (docs/results-format.md)."""
        by_status: dict[str, int] = {}
        for status, *_ in self.jobs.values():
            by_status[status] = by_status.get(status, 0) + 1
        per = (lambda usd: round(usd / self.ok * 1000.0, 9) if self.ok else 0.0)
        return {
            "jobs": len(self.jobs),
            "jobs_by_status": dict(sorted(by_status.items())),
            "records": self.records,
            "records_ok": self.ok,
            "records_failed": self.failed,
            "records_not_completed": self.not_completed,
            "queue_wait_s": _spread([j[2] for j in self.jobs.values()]),
            "job_duration_s": _spread([j[3] for j in self.jobs.values()]),
            "time_to_last_result_s": self.last_result,
            "cost_usd": {
                "cache_pricing": default_table().batch_cache,
                "stacked": round(self.stacked, 9), "unstacked": round(self.unstacked, 9),
                "stacked_per_1000": per(self.stacked), "unstacked_per_1000": per(self.unstacked),
            },
        }


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _spread(xs: list[float | None]) -> dict[str, float | None]:
    vals = sorted(x for x in xs if x is not None)
    if not vals:
        return {"p50": None, "max": None, "count": 0}
    return {"p50": round(statistics.median(vals), 3), "max": round(vals[-1], 3), "count": len(vals)}
