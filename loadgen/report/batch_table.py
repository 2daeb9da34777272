"""The batch arms' block of a run's report: jobs, records by outcome, queue wait, job
duration, time to the last result, and the bill both ways (summary.json arms.<arm>.batch).

Whether Bedrock's prompt-cache prices stack with the batch discount is not documented by
AWS (docs/pricing.md), so both bills stand side by side; `cost` in the headline table is
the one the catalog's assumption picks (pricing.toml [batch] cache_pricing).
"""

from __future__ import annotations

from typing import Any, Mapping

from loadgen.report.table import format_table

HEADERS = ["batch arm", "jobs", "records", "ok", "failed", "not done", "queue wait p50", "job p50",
           "last result", "stacked", "per 1000", "unstacked", "per 1000"]


def _s(v: Any) -> str:
    return "-" if v is None else f"{v:,.0f}s"


def batch_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for name, arm in summary.get("arms", {}).items():
        b = arm.get("batch")
        if not b:
            continue
        cost = b.get("cost_usd", {})
        jobs = f"{b['jobs']}" + (" (" + ", ".join(f"{n} {st}" for st, n in b.get("jobs_by_status", {}).items())
                                 + ")" if b.get("jobs_by_status") else "")
        rows.append([name, jobs, str(b["records"]), str(b["records_ok"]), str(b["records_failed"]),
                     str(b["records_not_completed"]), _s(b["queue_wait_s"].get("p50")),
                     _s(b["job_duration_s"].get("p50")), _s(b.get("time_to_last_result_s")),
                     f"${cost.get('stacked', 0):.4f}", f"${cost.get('stacked_per_1000', 0):.2f}",
                     f"${cost.get('unstacked', 0):.4f}", f"${cost.get('unstacked_per_1000', 0):.2f}"])
    return rows


def batch_table(summary: Mapping[str, Any]) -> str:
    """The block ("" when the run has no batch arm)."""
    rows = batch_rows(summary)
    if not rows:
        return ""
    how = next((a["batch"].get("cost_usd", {}).get("cache_pricing") for a in summary["arms"].values()
                if a.get("batch")), "stacked")
    return (format_table(HEADERS, rows) + "\n"
            f"batch cost both ways: cache prices stacked with the batch discount, or cache tokens billed as "
            f"plain input (unstacked); AWS does not say which, so `cost` above assumes {how} (docs/pricing.md). "
            "Times are scenario seconds from the run's start (last result) or the job's submission.")
