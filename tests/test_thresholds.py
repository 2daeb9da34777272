"""Threshold expressions: what users write in [thresholds], parsed and checked against
one arm of summary.json."""

from __future__ import annotations

import pytest

from loadgen.thresholds import evaluate, parse

ARM = {
    "requests": {"sent": 200, "ok": 190, "throttled": 6, "error": 3, "timeout": 1, "retries": 6},
    "cache": {"cold": 40, "warm": 150, "none": 0, "warm_ratio": 0.79},
    "tokens": {"input": 1000, "output": 2000, "cache_read": 3000, "cache_write": 4000},
    "cost_usd": {"total": 0.6, "per_1000": 3.0},
    "latency_ms": {"ttft": {"p50": 400, "p90": 900, "p99": 1800, "p999": 2500, "max": 3000},
                   "e2e": {"p99": 9000}},
}


@pytest.mark.parametrize("expr,metric,stat,op,value", [
    ("p99(ttft) < 2s", "ttft", "p99", "<", 2000),
    ("p99.9(e2e) <= 800ms", "e2e", "p99.9", "<=", 800),
    ("max( schedule_lag ) < 1.5s", "schedule_lag", "max", "<", 1500),
    ("mean(service)>=250ms", "service", "mean", ">=", 250),
    ("throttle_rate < 1%", "throttle_rate", None, "<", 0.01),
    ("error_rate < 0.005", "error_rate", None, "<", 0.005),
    ("warm_ratio > 80%", "warm_ratio", None, ">", 0.8),
    ("cost_per_1000 <= $3.00", "cost_per_1000", None, "<=", 3.0),
    ("cost_total < 12", "cost_total", None, "<", 12),
    ("rpm >= 600", "rpm", None, ">=", 600),
    ("tpm < 400000", "tpm", None, "<", 400000),
])
def test_parse(expr, metric, stat, op, value):
    t = parse(expr)
    assert (t.metric, t.stat, t.op) == (metric, stat, op)
    assert t.value == pytest.approx(value)


@pytest.mark.parametrize("expr,fragment", [
    ("p99(ttfb) < 2s", "unknown latency 'ttfb'"),
    ("p99(ttft) < 2", "add a unit"),
    ("ttft < 2s", "needs a statistic"),
    ("throttle_rat < 1%", "did you mean 'throttle_rate'?"),
    ("throttle_rate < 5", 'write a percent like "5%"'),
    ("p99(ttft) == 2s", "expected one of < <= > >="),
    ("p99(ttft)", "expected METRIC OP VALUE"),
    ("p100(ttft) < 1s", "between p0 and p100"),
    ("cost_total < three dollars", "USD"),
    ("", "expected METRIC OP VALUE"),
])
def test_parse_errors_say_what_was_expected(expr, fragment):
    with pytest.raises(ValueError) as e:
        parse(expr)
    assert fragment in str(e.value)


@pytest.mark.parametrize("expr,passed,measured", [
    ("p99(ttft) < 2s", True, 1800),
    ("p99.9(ttft) < 2s", False, 2500),
    ("max(ttft) <= 3s", True, 3000),
    ("p99(e2e) < 8s", False, 9000),
    ("throttle_rate < 1%", False, 0.03),
    ("error_rate <= 2%", True, 0.02),
    ("warm_ratio > 80%", False, 0.79),
    ("cost_per_1000 <= $3.00", True, 3.0),
    ("cost_total < $0.50", False, 0.6),
])
def test_evaluate_against_a_summary_arm(expr, passed, measured):
    ok, got = evaluate(parse(expr), ARM)
    assert ok is passed
    assert got == pytest.approx(measured)


def test_rpm_and_tpm_from_counts_over_the_run_time():
    assert evaluate(parse("rpm >= 100"), ARM, scenario_s=60) == (True, 200)
    assert evaluate(parse("tpm < 5000"), ARM, scenario_s=120) == (False, 5000)
    assert evaluate(parse("rpm > 1"), {**ARM, "rpm": 0.5}) == (False, 0.5)


def test_a_missing_figure_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the summary has no latency_ms\.ttft\.p95"):
        evaluate(parse("p95(ttft) < 1s"), ARM)
    with pytest.raises(ValueError, match="the summary has no rpm"):
        evaluate(parse("rpm > 1"), ARM)
