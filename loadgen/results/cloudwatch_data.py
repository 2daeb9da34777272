"""A run's interval figures as CloudWatch PutMetricData datums, and their split into
calls within the API's limits. Pure: the sender (loadgen/api/cloudwatch.py) does the I/O.

Limits (CloudWatch API reference, PutMetricData, and botocore's cloudwatch
service-2.json, read 2026-12): at most 1,000 metric datums per call; at most 150
distinct values per datum when sending `Values`/`Counts` (CloudWatch keeps them as a
distribution, so percentile statistics such as p99 work); a request body of at most
1 MB; at most 30 dimensions per metric. A latency histogram with more than 150 distinct
values becomes several datums of the same metric and timestamp, which CloudWatch
adds together.

Metrics per arm and interval (`METRICS`): counts (Count), tokens by kind (Count), the
cost of an attempt as a statistic set (Sum: the interval's bill; Average: per attempt;
Minimum / Maximum: the cheapest and dearest attempt), and latency distributions in
milliseconds: TTFT and E2E over ok attempts (as summary.json's `ttft` / `e2e`), and
E2EAllAttempts over every attempt, a failed one at the time it failed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Mapping, Sequence

from loadgen.results.histograms import recorded
from loadgen.results.intervals import ArmInterval
from loadgen.results.metrics import ArmInfo

MAX_DATUMS_PER_CALL = 1000
MAX_VALUES_PER_DATUM = 150
MAX_CALL_BYTES = 1_000_000
# what this module lets one call's datums add up to by `datum_bytes` (an over-estimate of
# the encoded size), leaving room for the envelope
CALL_BYTES_BUDGET = 800_000

DIMENSION_NAMES = {"scenario": "Scenario", "arm": "Arm", "model": "Model", "profile": "Profile"}
# metric name -> (unit, what it holds); docs/results-format.md lists the same
METRICS = {
    "Attempts": ("Count", "attempts that ended in the interval (retries included)"),
    "Throttles": ("Count", "attempts throttled"),
    "Errors": ("Count", "attempts that failed otherwise (error or timeout)"),
    "Retries": ("Count", "attempts that were retries"),
    "InputTokens": ("Count", "uncached input tokens"),
    "OutputTokens": ("Count", "output tokens"),
    "CacheReadTokens": ("Count", "tokens read from the prompt cache"),
    "CacheWriteTokens": ("Count", "tokens written to the prompt cache"),
    "CostUSD": ("None", "USD per attempt, a statistic set: Sum = the interval's bill, Average = per attempt"),
    "TTFT": ("Milliseconds", "time to first token from the intended start, ok attempts"),
    "E2E": ("Milliseconds", "end to end from the intended start, ok attempts"),
    "E2EAllAttempts": ("Milliseconds", "end to end from the intended start, every attempt"),
}
_LATENCY = (("TTFT", "ttft"), ("E2E", "e2e"), ("E2EAllAttempts", "e2e_all"))


def dimensions(chosen: Sequence[str], scenario: str, info: ArmInfo) -> list[dict]:
    """The datum dimensions `chosen` (scenario, arm, model, profile) for one arm."""
    values = {"scenario": scenario, "arm": info.name, "model": info.model_id, "profile": info.profile}
    return [{"Name": DIMENSION_NAMES[k], "Value": values[k]} for k in chosen]


def arm_datums(ai: ArmInterval, info: ArmInfo, dims: list[dict], when: dt.datetime, resolution: int) -> list[dict]:
    """Every datum of one arm's figures over one CloudWatch interval (`ai`)."""
    c = ai.counts(info.name)

    def base(name: str) -> dict:
        return {"MetricName": name, "Dimensions": dims, "Timestamp": when, "Unit": METRICS[name][0],
                "StorageResolution": resolution}

    out = []
    for name, v in (("Attempts", c.sent), ("Throttles", c.throttled), ("Errors", c.error + c.timeout),
                    ("Retries", ai.retries), ("InputTokens", ai.tokens[0]), ("OutputTokens", ai.tokens[1]),
                    ("CacheReadTokens", ai.tokens[2]), ("CacheWriteTokens", ai.tokens[3])):
        out.append({**base(name), "Value": float(v)})
    if c.sent:
        out.append({**base("CostUSD"), "StatisticValues": {
            "SampleCount": float(c.sent), "Sum": round(c.cost_usd, 9),
            "Minimum": ai.cost_min, "Maximum": ai.cost_max}})
    for name, metric in _LATENCY:
        vc = recorded(ai.metrics.histogram(info.name, metric))
        for i in range(0, len(vc), MAX_VALUES_PER_DATUM):
            part = vc[i:i + MAX_VALUES_PER_DATUM]
            out.append({**base(name), "Values": [v / 1000.0 for v, _ in part],
                        "Counts": [float(n) for _, n in part]})
    return out


def datum_bytes(d: Mapping[str, Any]) -> int:
    """An over-estimate of one datum's encoded size (the query protocol, the wordiest:
    ~40 bytes of key per value and per count, ~60 per dimension)."""
    return 300 + 60 * len(d.get("Dimensions", ())) + sum(len(x["Value"]) for x in d.get("Dimensions", ())) \
        + 80 * len(d.get("Values", ()))


def calls(datums: Iterable[dict]) -> list[list[dict]]:
    """`datums` cut into PutMetricData calls of at most MAX_DATUMS_PER_CALL datums and
    CALL_BYTES_BUDGET estimated bytes each, in order."""
    out: list[list[dict]] = []
    cur: list[dict] = []
    size = 0
    for d in datums:
        b = datum_bytes(d)
        if cur and (len(cur) >= MAX_DATUMS_PER_CALL or size + b > CALL_BYTES_BUDGET):
            out.append(cur)
            cur, size = [], 0
        cur.append(d)
        size += b
    if cur:
        out.append(cur)
    return out
