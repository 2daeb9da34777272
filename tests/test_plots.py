"""Plots and the series behind them: each file is produced, the numbers under them are right."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from loadgen.engine.record import Attempt
from loadgen.report import latency_plot, plots
from loadgen.report.compare import fmt_value
from loadgen.report.sweep_chart import sweep_chart, sweep_figure
from loadgen.report.table import ms as _ms
from loadgen.results import series
from loadgen.results.directory import ResultsDir
from loadgen.results.histograms import new_histogram
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import sweep
from loadgen.scenario.thresholds import format_value, parse
from loadgen.scenario.units import format_ms


def att(arm, start, *, status="ok", gap=None, state="warm", cost=0.01, inp=0, out=100, read=0, write=0,
        model="us.anthropic.claude-haiku-4-5-20251001-v1:0", attempt=1, intended=None):
    """A requests.jsonl record (every Attempt field, as results.py writes them)."""
    return {"arm": arm, "session": 0, "turn": 0, "attempt": attempt,
            "intended": start if intended is None else intended, "start": start, "first_token": start + 0.4,
            "end": start + 1.0, "status": status, "error_code": None if status == "ok" else "ThrottlingException",
            "model_id": model, "profile": "geo", "region": None, "gap_s": gap, "cache_state": state,
            "cost_usd": cost, "input_tokens": inp, "output_tokens": out, "cache_read": read, "cache_write": write}


def test_quota_tokens_skip_cache_reads_and_apply_burndown():
    a = att("x", 0, inp=10, out=100, read=5000, write=200)
    assert series.quota_tokens(a) == 310
    assert series.quota_tokens(a, burndown=5) == 710


def test_per_minute_counts_sends_throttles_and_tokens():
    rows = [att("a", 5, inp=10), att("a", 65, status="throttled", out=0), att("b", 70, inp=20, out=0)]
    pm = series.per_minute(rows, span_s=150, burndown=lambda m: 5.0)
    assert pm["a"].requests == (1, 1, 0) and pm["a"].throttled == (0, 1, 0)
    assert pm["a"].tokens == (510, 0, 0)
    assert pm["*"].requests == (1, 2, 0) and pm["*"].tokens == (510, 20, 0)


def test_rolling_peak_over_any_60_seconds():
    assert series.rolling_peak([(0, 5), (30, 5), (59, 5), (61, 1)]) == 15
    assert series.rolling_peak([(0, 5), (60, 5)]) == 5  # the window is [t - 60, t)


def test_gap_points_keep_ok_calls_after_a_gap_that_hit_or_missed():
    rows = [att("a", 0, gap=None, state="cold"), att("a", 100, gap=100, state="warm"),
            att("a", 500, gap=400, state="cold"), att("a", 600, gap=100, state="none"),
            att("a", 700, gap=100, status="throttled")]
    g = series.RunSeries.of(rows).gaps["a"]
    assert g.n == 2 and g.rug_points() == [(pytest.approx(100.0, rel=2e-3), True), (pytest.approx(400.0, rel=2e-3), False)]
    assert series.warm_ratio_bins([(100, True), (110, False), (400, False)], (0, 300)) == [
        (0, 300, 2, 0.5), (300, float("inf"), 1, 0.0)]
    # on an edge goes up, as summary.json's gap buckets do; a negative gap (rounding) to the first
    assert series.warm_ratio_bins([(-0.001, True), (300, True), (600, False)], (0, 300, 600)) == [
        (0, 300, 1, 1.0), (300, 600, 1, 1.0), (600, float("inf"), 1, 0.0)]


def test_cumulative_cost_runs_in_time_order():
    ts, ys = series.RunSeries.of([att("a", 10, cost=2.0), att("a", 0, cost=1.0)]).cumulative_cost()["a"]
    assert ts == (2.0, 12.0) and ys == (1.0, 3.0)   # per 1 s bin, at its end


def test_cost_bins_stay_bounded_and_sum_exactly():
    bins = series.CostBins()
    for i in range(100_000):
        bins.add(i * 0.5, 0.25)
    ts, ys = bins.curve()
    assert len(ts) <= series.MAX_COST_BINS and ys[-1] == 25_000.0 and ts[-1] >= 49_999.5


def test_streamed_peaks_equal_the_sorted_ones_and_say_when_they_are_not():
    rng = random.Random(3)
    events = sorted((rng.uniform(0, 3000), rng.randint(1, 500)) for _ in range(5000))
    jittered = [(t + rng.uniform(-5, 0), w) for t, w in events]   # as completions are written
    want = series.rolling_peak(jittered)
    p = series.RollingPeak()
    for t, w in jittered:
        p.add(t, w)
    assert p.late == 0 and p.value() == want
    # a second part written after the first: late, flagged, and exact with a longer lag
    halves = [e for e in jittered if e[0] % 2 < 1] + [e for e in jittered if e[0] % 2 >= 1]
    p = series.RollingPeak()
    for t, w in sorted(halves[:2500]) + sorted(halves[2500:]):
        p.add(t, w)
    assert p.late and p.value() != want
    q = series.RollingPeak(lag_s=p.max_late_s + 1)
    for t, w in sorted(halves[:2500]) + sorted(halves[2500:]):
        q.add(t, w)
    assert q.late == 0 and q.value() == want


def _png(p):
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    return data


def _sweep_rows(values, costs_by_arm, key="sessions.think_time.median", warm=None):
    """sweep.csv rows as loadgen.scenario.sweep.row makes them: axis columns first, then "point"."""
    return [{key: v, "point": i, "arm": arm, "cost_per_1000": costs[i],
             **({"warm_ratio": warm[arm][i]} if warm else {})}
            for i, v in enumerate(values) for arm, costs in costs_by_arm.items()]


def _chart(rows, key, out):
    """The Figure of the chart `sweep_chart` writes to `out` (a PNG, checked)."""
    _png(sweep_chart(rows, key, out))
    return sweep_figure(rows, key)


def _marks(fig):
    return [t.get_text() for t in fig.axes[0].texts if "crossover" in t.get_text()]


def test_sweep_chart_over_durations_and_numbers(tmp_path):
    rows = _sweep_rows(["1m", "5m", "20m"], {"ttl-5m": [2.0, 4.0, 6.0], "ttl-1h": [2.6, 3.2, 4.0]},
                       warm={"ttl-5m": [0.95, 0.5, 0.05], "ttl-1h": [0.9] * 3})
    fig = _chart(rows, "sessions.think_time.median", tmp_path / "sweep.png")
    assert _marks(fig) == [" crossover ttl-5m / ttl-1h\n sessions.think_time.median: between 1m and 5m,"
                           " ~2m43s by linear interpolation"]
    assert [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["1m", "5m", "20m"]
    nums = _sweep_rows(["1000", "4000", "16000"], {"a": [1.0, 4.0, 16.0]}, key="prefix_tokens")
    fig = _chart(nums, "prefix_tokens", tmp_path / "nums.png")
    assert fig.axes[0].get_xscale() == "log" and not _marks(fig)
    with pytest.raises(KeyError, match="no value for 'rate'"):
        sweep_chart(nums, "rate", tmp_path / "x.png")


def test_sweep_chart_marks_the_crossovers_the_sweep_text_prints(tmp_path):
    # at 5m the arms are within sweep's 0.5 % tie: no crossing between 1m and 5m or 5m
    # and 20m on its own, one between 1m and 20m (the text's; the chart must agree)
    key = "sessions.think_time.median"
    rows = _sweep_rows(["1m", "5m", "20m"], {"a": [2.0, 3.0, 4.0], "b": [2.5, 3.005, 3.5]})
    (c,) = sweep.crossovers(rows, sweep.parse_axes([f"{key}=1m,5m,20m"]))
    assert c.between == ("1m", "20m")
    fig = _chart(rows, key, tmp_path / "tie.png")
    assert _marks(fig) == [f" crossover a / b\n {key}: between {c.between[0]} and {c.between[1]},"
                           f" ~{c.estimate} by linear interpolation"]
    # a non-numeric axis: values in order, no crossing marked (the text prints none)
    cats = _sweep_rows(["geo", "global"], {"a": [1.0, 3.0], "b": [2.0, 2.0]}, key="arms.profile")
    fig = _chart(cats, "arms.profile", tmp_path / "cats.png")
    assert not _marks(fig) and [t.get_text() for t in fig.axes[-1].get_xticklabels()] == ["geo", "global"]


def test_sweep_chart_keeps_other_swept_keys_apart(tmp_path):
    rows = [{"arrivals.rate": r, "sessions.think_time.median": m, "point": i, "arm": "a", "cost_per_1000": c}
            for i, (r, m, c) in enumerate([("1/s", "1m", 1.0), ("1/s", "5m", 2.0),
                                          ("2/s", "1m", 3.0), ("2/s", "5m", 1.5)])]
    fig = _chart(rows, "sessions.think_time.median", tmp_path / "two.png")
    assert sorted(ln.get_label() for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")) == [
        "a (rate=1/s)", "a (rate=2/s)"]
    # rate 1/s is cheaper below ~4m12s: the same series and the same crossing the text names
    assert _marks(fig) == [" crossover arrivals.rate=1/s / arrivals.rate=2/s (arm=a)\n"
                           " sessions.think_time.median: between 1m and 5m, ~4m12s by linear interpolation"]


def test_write_plots_without_histograms_rebuilds_latency_from_requests(tmp_path):
    rows = [att("a", 60.0 * i, gap=60.0 * i or None, state="warm" if i else "cold", write=0 if i else 5000)
            for i in range(12)] + [att("b", 60.0 * i + 1, state="none") for i in range(12)]
    summary = {"scenario_s": 720.0, "arms": {"a": {"model_id": rows[0]["model_id"]},
                                            "b": {"model_id": rows[0]["model_id"]}}}
    written = plots.write_plots(tmp_path, summary, rows, quotas={"a": (5000, 10), "b": None})
    assert [p.name for p in written] == ["latency.png", "cache-by-gap.png", "cost.png", "throughput.png"]
    for p in written:
        assert p.parent == tmp_path / "plots"
        _png(p)
    assert not list((tmp_path / "plots").glob(".*"))  # no temp files left behind


def test_rebuilt_histograms_follow_metrics_schedule_lag_counts_first_attempts_only():
    # a throttled first try sent 0.5 s late, then its retry 10 s after the intended start:
    # the retry's wait is backoff (the target's doing), not the scheduler falling behind
    rows = [att("a", 0.5, intended=0.0, status="throttled"), att("a", 10.0, intended=0.0, attempt=2)]
    h = plots.histograms_from_requests(rows)["a"]
    assert h["schedule_lag"].get_total_count() == 1
    assert h["schedule_lag"].get_max_value() == pytest.approx(500_000, rel=1e-3)
    assert h["e2e"].get_total_count() == 1 and h["e2e"].get_max_value() == pytest.approx(11_000_000, rel=1e-3)


def _hist(values_ms):
    h = new_histogram()
    for v in values_ms:
        h.record_value(int(v * 1000))
    return h


def test_the_latency_line_reaches_the_worst_request():
    # slow-agent: TTFT max 2.52 s, yet the line stopped at p(1 - 1/n) ~ 1.5 s
    h = _hist([800, 900, 1000, 1100, 1500, 2520])
    xs, ys = latency_plot.spectrum_points(h)
    assert ys[-1] == pytest.approx(2520, rel=1e-3) and max(ys) == ys[-1]
    assert xs[-1] == pytest.approx(6)          # at the last percentile n resolves
    assert ys[-2] < 2000                        # which alone would hide the max
    fig = latency_plot.latency_figure({"a": {"ttft": h}}, metrics=("ttft",))
    ax = fig.axes[0]
    assert max(max(line.get_ydata()) for line in ax.get_lines()) == pytest.approx(2520, rel=1e-3)
    assert ax.get_ylim()[1] >= 2520 and ax.get_xlim()[1] > xs[-1]   # the marker is inside the frame
    assert "max 2.52 s" in ax.get_legend().get_texts()[0].get_text()


def test_write_plots_prefers_the_hlog_files(tmp_path, monkeypatch):
    m = Metrics([ArmInfo("a", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m")])
    m.record(Attempt("a", 0, 0, 1, 0.0, 0.0, 0.4, 1.0, "ok", None, "m", "geo", None))
    with ResultsDir(tmp_path) as out:
        out.write_histograms(m, scenario_s=1.0)
    monkeypatch.setattr(plots, "histograms_from_requests",
                        lambda attempts: pytest.fail("rebuilt from requests.jsonl although histograms/ exist"))
    seen = {}
    real = plots.latency_spectrum
    monkeypatch.setattr(plots, "latency_spectrum", lambda hists, out, **kw: seen.update(hists) or real(hists, out, **kw))
    plots.write_plots(tmp_path, {"scenario_s": 1.0, "arms": {"a": {"model_id": "m"}}}, [att("a", 0)])
    assert seen["a"]["ttft"].get_total_count() == 1 and seen["a"]["e2e"].get_max_value() >= 999_000


@pytest.mark.parametrize("arms", [{}, {"a": {"model_id": "m"}}])
def test_an_empty_run_plots_without_legend_warnings(tmp_path, recwarn, caplog, arms):
    # matplotlib said "No artists with labels found to put in legend" for empty runs
    written = plots.write_plots(tmp_path, {"scenario_s": 0.0, "arms": arms}, [])
    assert len(written) == 4
    said = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "legend" in m], said


def test_one_millisecond_format_for_prose_and_table_cells():
    assert [format_ms(v) for v in (849.6, 999.4, 1000, 1618)] == ["850 ms", "999 ms", "1.00 s", "1.62 s"]
    assert format_ms(1618, sep="") == _ms(1618) == fmt_value("ms", 1618) == "1.62s"
    assert _ms(850) == fmt_value("ms", 850) == "850ms" and _ms(None) == fmt_value("ms", None) == "-"
    assert format_value(parse("p99(ttft) < 2s"), 1618) == "1.62 s"


def test_batch_arms_are_left_out_of_the_latency_figure_and_the_figure_says_so(tmp_path, monkeypatch):
    """A batch arm's results arrive in hours; on the on-demand arms' axis it would flatten
    them. The latency figure draws the on-demand arms and names the batch arm it leaves out."""
    seen = {}

    def spy(hists, out_png, metrics=latency_plot.PANELS, *, note=None):
        seen["arms"], seen["note"] = sorted(hists), note
        return latency_plot.latency_spectrum(hists, out_png, metrics, note=note)

    monkeypatch.setattr(plots, "latency_spectrum", spy)
    levers = Path(__file__).resolve().parent.parent / "scenarios" / "levers.toml"
    assert main(["simulate", str(levers), "--out", str(tmp_path), "--quiet"]) == 0
    assert seen["arms"] == ["cached-1h", "cached-5m", "global-5m", "on-demand"]
    assert seen["note"] == "batch arm 'batch' not drawn (results in hours: see the batch table)"
