"""Threshold expressions: what users write in [thresholds], parsed and checked against
one arm of summary.json."""

from __future__ import annotations

import pytest

from loadgen.scenario.thresholds import evaluate, parse

ARM = {
    "requests": {"sent": 200, "ok": 190, "throttled": 6, "error": 3, "timeout": 1, "retries": 6},
    "cache": {"cold": 40, "warm": 150, "none": 0, "warm_ratio": 0.79},
    "tokens": {"input": 1000, "output": 2000, "cache_read": 3000, "cache_write": 4000},
    "cost_usd": {"total": 0.6, "per_1000": 3.0},
    "rpm_peak": 100, "tpm_peak": 6000,
    # ttft / e2e: ok attempts only; *_all: every attempt, the 10 failed ones included
    "latency_ms": {"ttft": {"p50": 350, "p90": 700, "p99": 1200, "p999": 1500, "max": 1600, "count": 190,
                            "failed": 10},
                   "ttft_all": {"p50": 400, "p90": 900, "p99": 1800, "p999": 2500, "max": 3000, "count": 200,
                                "failed": 10},
                   "e2e": {"p99": 7000}, "e2e_all": {"p99": 9000}},
}
FAILED_NOTE = "10 of 200 attempts failed, each counted at the time it failed"


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
    ("throttle_rate < 150%", "a throttle_rate lies between 0% and 100%"),
    ("warm_ratio > -5%", "warm_ratio takes a percent"),
    ("error_rate <= 100.5%", "between 0% and 100%"),
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
    ("p99(e2e_ok) < 8s", True, 7000),
    ("p99.9(ttft_ok) < 2s", True, 1500),
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


def test_rpm_is_the_arms_peak_minute_not_an_average():
    # seed-reference: 4 requests in 40 s were once "measured" as 8 /min (4 over 0.5 min)
    assert evaluate(parse("rpm < 100"), {**ARM, "rpm_peak": 4}) == (True, 4)
    assert evaluate(parse("rpm >= 100"), ARM) == (True, 100)


def test_tpm_is_the_peak_quota_tokens_with_burndown_passed_in():
    # summary.json's tpm_peak (6000, no burndown) and token sums (cache reads included)
    # are not what the quota meets; the caller's peak quota TPM is.
    assert evaluate(parse("tpm < 30000"), ARM, peak_tpm=21772.0) == (True, 21772.0)


def test_a_missing_figure_is_a_clear_error():
    with pytest.raises(ValueError, match=r"the summary has no latency_ms\.ttft_all\.p95"):
        evaluate(parse("p95(ttft) < 1s"), ARM)
    with pytest.raises(ValueError, match="the summary has no rpm_peak"):
        evaluate(parse("rpm > 1"), {k: v for k, v in ARM.items() if k != "rpm_peak"})
    with pytest.raises(ValueError, match="from requests.jsonl"):
        evaluate(parse("tpm < 1"), ARM)   # no peak_tpm: nothing to measure, not an average


# ---- checking a run: thresholds.check / format_results ---------------------------------

from dataclasses import dataclass as _dc  # noqa: E402

from loadgen.scenario.thresholds import FAIL, PASS, SKIP, check, format_results  # noqa: E402


@_dc(frozen=True)
class T:
    expr: str
    arm: str | None = None
    line: int = 0


def _summary(**arms):
    return {"scenario_s": 120.0, "arms": arms}


def test_check_takes_tpm_from_the_peak_quota_tokens_per_arm():
    peaks = {"a": 21772.0, "*": 28472.0}       # arm "b" sent nothing: 0
    res = check([T("tpm < 25000")], _summary(a=ARM, b=ARM), peak_tpm=peaks)
    assert [(r.arm, r.status, r.measured) for r in res] == [("a", PASS, 21772.0), ("b", PASS, 0.0)]
    (r,) = check([T("tpm < 25000")], _summary(a=ARM))   # attempts not at hand: FAIL, not a guess
    assert r.status == FAIL and "requests.jsonl" in r.note


def test_check_runs_all_arm_thresholds_on_every_arm_and_per_arm_ones_on_theirs():
    slow = {**ARM, "latency_ms": {**ARM["latency_ms"], "ttft_all": {**ARM["latency_ms"]["ttft_all"], "p99": 2600}}}
    res = check([T("p99(ttft) < 2s", line=3), T("warm_ratio > 70%", arm="b", line=5)], _summary(a=ARM, b=slow))
    assert [(r.arm, r.expr.text, r.status) for r in res] == [
        ("a", "p99(ttft) < 2s", PASS),
        ("b", "p99(ttft) < 2s", FAIL),
        ("b", "warm_ratio > 70%", PASS),
    ]
    assert res[1].measured == 2600 and res[1].line == 3


def test_failing_line_says_what_was_measured_and_the_limit():
    res = check([T("p99(ttft) < 1.5s", arm="ttl-5m")], _summary(**{"ttl-5m": ARM}))
    assert format_results(res) == f"ttl-5m  p99(ttft) < 1.5s  FAIL  measured 1.80 s (limit < 1.50 s); {FAILED_NOTE}"
    res = check([T("p99(ttft) < 2s")], _summary(**{"ttl-5m": ARM}))
    assert format_results(res) == f"ttl-5m  p99(ttft) < 2s  PASS  measured 1.80 s; {FAILED_NOTE}"
    res = check([T("p99(ttft_ok) < 2s")], _summary(**{"ttl-5m": ARM}))
    assert format_results(res) == ("ttl-5m  p99(ttft_ok) < 2s  PASS  measured 1.20 s; "
                                   "ok attempts only: 10 failed attempt(s) left out")


@pytest.mark.parametrize("expr,shown", [
    ("p50(ttft) < 1s", "400 ms"),
    ("throttle_rate < 1%", "3.00 %"),
    ("warm_ratio > 50%", "79.00 %"),
    ("cost_per_1000 < $5", "$3.00"),
    ("cost_total < $5", "$0.6000"),
    ("rpm < 1000", "100 /min"),
    ("tpm < 1", "21,772 /min"),
])
def test_each_metric_kind_is_shown_in_its_unit(expr, shown):
    (r,) = check([T(expr)], _summary(a=ARM), peak_tpm={"a": 21772.0})
    assert f"measured {shown}" in format_results([r])


def test_no_data_fails_and_an_arm_left_out_of_the_run_is_skipped():
    nothing = {"p50": None, "p99": None, "count": 0}
    empty = {**ARM, "latency_ms": {"ttft": nothing, "ttft_all": nothing}}
    res = check([T("p99(ttft) < 2s"), T("p99(ttft_ok) < 2s"), T("rpm > 1", arm="gone")], _summary(a=empty))
    assert [(r.arm, r.status) for r in res] == [("a", FAIL), ("a", FAIL), ("gone", SKIP)]
    text = format_results(res)
    assert "a     p99(ttft) < 2s     FAIL  no attempts to measure" in text
    assert "a     p99(ttft_ok) < 2s  FAIL  no ok requests to measure" in text
    assert "SKIP  arm not in this run" in text


def test_percentiles_the_summary_lacks_come_from_the_histograms():
    seen = []

    def pct(arm, metric, p):
        seen.append((arm, metric, p))
        return 950.0

    (r,) = check([T("p95(e2e) < 1s")], _summary(a=ARM), percentile=pct)
    assert (r.status, r.measured, seen) == (PASS, 950.0, [("a", "e2e_all", 95.0)])  # every attempt's histogram
    (r,) = check([T("p95(e2e) < 1s")], _summary(a=ARM))  # no histograms: a clear failure
    assert r.status == FAIL and "latency_ms.e2e_all.p95" in r.note


def test_an_unparsable_expression_fails_with_the_parse_message():
    (r,) = check([T("p99(ttfb) < 2s")], _summary(a=ARM))
    assert r.status == FAIL and "unknown latency 'ttfb'" in format_results([r])


def test_validate_rejects_a_ratio_above_100_percent_with_file_line_and_key(tmp_path, capsys):
    from loadgen.commands.cli import main

    sc = tmp_path / "s.toml"
    sc.write_text('name = "x"\nduration = "1m"\n\n[model]\nid = "anthropic.claude-haiku-4-5-20251001-v1:0"\n\n'
                  '[workload]\nkind = "single"\nprefix_tokens = 100\noutput_tokens = 10\n\n[arrivals]\nkind = "constant"\nrate = "1/s"\n\n'
                  '[[arms]]\nname = "a"\n\n[thresholds]\nall = [\n  "p99(ttft) < 2s",\n  "throttle_rate < 150%",\n]\n')
    assert main(["validate", str(sc)]) == 2
    err = capsys.readouterr().err
    assert f"{sc}:22: thresholds.all[1]" in err and "between 0% and 100%" in err


def test_twenty_percent_timeouts_fail_p99_e2e_which_the_ok_only_figure_passes():
    # 80 answers in ~1 s, 20 attempts timed out at a 60 s deadline: p99(e2e) < 5s once
    # passed, measured over the 80 answers alone
    from loadgen.results.metrics import ArmInfo, Metrics
    from loadgen.engine.record import Attempt

    m = Metrics([ArmInfo("a", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m")])
    for i in range(100):
        t = 10.0 * i
        timed_out = i % 5 == 0
        m.record(Attempt("a", i, 0, 1, t, t, None if timed_out else t + 0.4, t + (60.0 if timed_out else 1.0 + i / 1000),
                         "timeout" if timed_out else "ok", "ClientTimeout" if timed_out else None, "m", "geo", None))
    summary = m.summary({})
    assert summary["arms"]["a"]["latency_ms"]["e2e"]["p99"] < 5000          # the ok-only figure: fine
    (new,) = check([T("p99(e2e) < 5s")], summary)
    assert new.status == FAIL and new.measured == pytest.approx(60_000, rel=1e-3)
    assert "20 of 100 attempts failed" in format_results([new])
    (old,) = check([T("p99(e2e_ok) < 5s")], summary)                         # the ok-only gate, by name
    assert old.status == PASS
    (ttft,) = check([T("p99(ttft) < 5s")], summary)   # no first token before the deadline: 60 s
    assert ttft.status == FAIL


def test_attempts_cut_short_by_the_users_interrupt_are_named_beside_the_verdict():
    """A second Ctrl-C records the attempts in flight as Interrupted: they still count (a
    failure never vanishes), and the verdict and the failure note say they were the user's."""
    from loadgen.results.metrics import ArmInfo, Metrics
    from loadgen.engine.record import Attempt
    from loadgen.report.summary_table import failure_notes

    m = Metrics([ArmInfo("a", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m")])
    for i in range(40):
        t = 10.0 * i
        cut = i >= 36
        m.record(Attempt("a", i, 0, 1, t, t, t + 0.4, t + (3.0 if cut else 1.0), "error" if cut else "ok",
                         "Interrupted" if cut else None, "m", "geo", None))
    summary = m.summary({})
    (v,) = check([T("p99(e2e) < 2s")], summary)
    assert v.status == FAIL
    assert "4 of 40 attempts failed" in v.note and "4 of the arm's attempts were cut short by the interrupt" in v.note
    (note,) = failure_notes(summary)
    assert "4 of 40 attempts failed (4 error, 4 of them cut short by the interrupt (not the target))" in note
    # a target's own errors are not called the user's
    m2 = Metrics([ArmInfo("a", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m")])
    m2.record(Attempt("a", 0, 0, 1, 0.0, 0.0, None, 3.0, "error", "InternalServerException", "m", "geo", None))
    (v2,) = check([T("p99(e2e) < 2s")], m2.summary({}))
    assert "interrupt" not in v2.note and "interrupt" not in failure_notes(m2.summary({}))[0]


def test_a_summary_without_all_attempt_figures_is_read_only_when_nothing_failed():
    # summary.json written before loadgen timed failed attempts: latency_ms.e2e is ok-only
    clean = {**ARM, "requests": {**ARM["requests"], "ok": 200, "throttled": 0, "error": 0, "timeout": 0},
             "latency_ms": {"e2e": {"p99": 900, "count": 200}}}
    (r,) = check([T("p99(e2e) < 1s")], _summary(a=clean))
    assert (r.status, r.measured) == (PASS, 900)          # all attempts ok: the same figure
    failed = {**ARM, "latency_ms": {"e2e": {"p99": 900, "count": 190}}}
    (r,) = check([T("p99(e2e) < 1s")], _summary(a=failed))
    assert r.status == FAIL and "10 attempt(s) failed" in r.note and "p99(e2e_ok)" in r.note
    (r,) = check([T("p99(e2e_ok) < 1s")], _summary(a=failed))
    assert r.status == PASS
