"""Per-arm detail tables of one run: requests and errors, prompt cache, cost, latency,
throughput against the quota, cache warm ratio by gap. `loadgen report` prints them under
the summary; report.html shows the same `Table`s."""

from __future__ import annotations

from typing import Any, Mapping

from loadgen.report.table import Table, count, ms, pct, usd
from loadgen.report.view import RunView

LAT_STATS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max"), ("mean", "mean"))


def detail_tables(view: RunView) -> list[Table]:
    """Per-arm detail: requests and errors, cache, cost, latency, throughput vs quota, gaps."""
    arms = view.summary.get("arms", {})
    tables = []
    rows = []
    for name, a in arms.items():
        r = a["requests"]
        errs = ", ".join(f"{k} {v}" for k, v in a.get("errors", {}).items()) or "-"
        rows.append((name, count(r["sent"]), count(r["ok"]), f"{count(r['throttled'])} ({pct(r['throttled'], r['sent'])})",
                     count(r["error"]), count(r["timeout"]), count(r["retries"]), errs))
    tables.append(Table("Requests (attempts, retries included)",
                        ("arm", "sent", "ok", "throttled", "error", "timeout", "retries", "not ok by error code"),
                        tuple((*r[:-1], r[-1]) for r in rows)))
    rows = []
    for name, a in arms.items():
        c, t = a["cache"], a["tokens"]
        split = ""
        if t.get("cache_write_5m") or t.get("cache_write_1h"):
            split = f" (5m {count(t.get('cache_write_5m', 0))}, 1h {count(t.get('cache_write_1h', 0))})"
        mm = c.get("mismatch", {}).get("total", 0)
        rows.append((name, a.get("cache_ttl", "-") if a.get("cache_enabled", True) else "off",
                     count(c["cold"]), count(c["warm"]), count(c["none"]), f"{100 * c['warm_ratio']:.1f}%",
                     count(t.get("cache_write")) + split, count(t.get("cache_read")), count(t.get("input")),
                     count(t.get("output")), count(mm)))
    tables.append(Table("Prompt cache (ok attempts by observed state; tokens over all attempts)",
                        ("arm", "ttl", "cold", "warm", "none", "warm ratio", "write tokens", "read tokens",
                         "uncached input", "output", "mismatch"), tuple(rows),
                        "warm ratio = warm / (warm + cold); mismatch: the cache state differed from loadgen's "
                        "prediction"))
    rows = []
    for name, a in arms.items():
        cu = a["cost_usd"]
        rows.append((name, usd(cu.get("input")), usd(cu.get("output")), usd(cu.get("cache_write")),
                     usd(cu.get("cache_read")), usd(cu["total"]), usd(cu["per_1000"])))
    tables.append(Table("Cost (USD)", ("arm", "input", "output", "cache write", "cache read", "total",
                                       "per 1000 ok"), tuple(rows)))
    rows = []
    order = ("ttft", "ttft_all", "e2e", "e2e_all", "service", "service_all", "schedule_lag")
    for name, a in arms.items():
        lats = a.get("latency_ms", {})
        for metric in sorted(lats, key=lambda m: order.index(m) if m in order else len(order)):
            lat = lats[metric]
            rows.append((name, metric, *(ms(lat.get(k)) for k, _ in LAT_STATS), count(lat.get("count")),
                         count(lat.get("failed"))))
    tables.append(Table("Latency", ("arm", "metric", *(lab for _, lab in LAT_STATS), "n", "failed"), tuple(rows),
                        "ttft and e2e from the intended start (no coordinated omission); service from the "
                        "actual send; schedule lag = send - intended. ttft/e2e/service: ok attempts only, "
                        "`failed` = the failed attempts they leave out. ttft_all/e2e_all/service_all: every "
                        "attempt, `failed` of them counted at the time they failed (a timeout at its deadline; "
                        "a failure before any token at that time as its ttft); these are what the headline "
                        "table and the thresholds read. schedule_lag: first attempts, failed ones included.",
                        left=2))
    tables.append(quota_table(view))
    tables.append(gap_table(arms))
    return tables


def quota_table(view: RunView) -> Table:
    arms = view.summary.get("arms", {})
    rows = []
    for name, a in arms.items():
        q = view.quotas.get(name)
        tpm_b = view.peaks_burndown.get(name)
        if q is None:
            rq = tq = "unknown"
            use = "-"
        else:
            rq = count(q[1]) if q[1] else "off"
            tq = count(q[0]) if q[0] else "unlimited"
            use = f"{100 * tpm_b / q[0]:.1f}%" if q[0] and tpm_b is not None else "-"
        rows.append((name, count(a.get("rpm_peak")), rq, count(a.get("tpm_peak")),
                     count(tpm_b), tq, use))
    if len(arms) > 1:
        s = view.summary
        rows.append(("all arms", count(s.get("rpm_peak")), "", count(s.get("tpm_peak")),
                     count(view.peaks_burndown.get("*")), "", ""))
    return Table("Throughput against the quota (peaks in any 60 s of scenario time)",
                 ("arm", "peak RPM", "RPM quota", "peak TPM", "peak TPM x burndown", "TPM quota", "of quota"),
                 tuple(rows),
                 "peak TPM = input + cache write + output (summary.json); x burndown applies the output "
                 "factor Bedrock charges the quota (5 for Claude 4.x). Arms on the same model id share "
                 "one quota: compare the all-arms row with it. Throttling can start below 100 %: at the "
                 "start of a request the quota holds all its input (cache reads too) + maxTokens.")


def gap_table(arms: Mapping[str, Any]) -> Table:
    names = list(arms)
    labels = [b["label"] for b in next(iter(arms.values()), {}).get("gap_buckets", [])]
    rows = []
    for i, lab in enumerate(labels):
        cells = []
        for n in names:
            bs = arms[n].get("gap_buckets") or []
            if i >= len(bs):
                cells.append("-")
                continue
            b = bs[i]
            k = b["warm"] + b["cold"]
            cells.append(f"{100 * b['warm_ratio']:.0f}% of {k}" if k else "-")
        rows.append((lab, *cells))
    return Table("Cache warm ratio by gap since the previous call on the same prefix",
                 ("gap", *names), tuple(rows),
                 "With the 5-minute TTL the ratio should fall across 4-5m / 5-6m; with the 1-hour TTL, at 60m.")
