"""`loadgen report` and `after_run` on a real (small, fast) run: tables, thresholds,
plots and a self-contained report.html."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from loadgen.engine.record import Attempt
from loadgen.report import html as html_report
from loadgen.report import verdicts
from loadgen.report.artifacts import after_run
from loadgen.report.compare import compare, groups_for
from loadgen.report.detail import detail_tables
from loadgen.report.render import report_dict, report_text
from loadgen.report.summary_shape import validate_summary
from loadgen.report.verdicts import check_thresholds, percentile_from_histograms
from loadgen.report.view import load_view
from loadgen.results.directory import ResultsDir, load_summary, read_histogram
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.scenario import loads

SCENARIO = """
name = "report-fast"
seed = 3
duration = "8m"

[target]
region = "us-east-1"
time_scale = 60

[model]
id = "anthropic.claude-haiku-4-5-20251001-v1:0"
max_tokens = 64
stream = true

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 10
output_tokens = 20

[arrivals]
kind = "poisson"
rate = "4/m"

[[arms]]
name = "cached"
cache_ttl = "5m"
profile = "region"

[[arms]]
name = "nocache"
cache = false
profile = "region"

[thresholds]
all = ["p99(ttft) < 60s", "throttle_rate < 1%"]
arms.cached = ["warm_ratio > 50%", "p95(e2e) < 60s", "cost_per_1000 < $2"]

[emulator]
latency = "fast"

[emulator.quotas]
tpm = 100000
"""

FAILING = SCENARIO.replace('arms.cached = ["warm_ratio > 50%"', 'arms.cached = ["warm_ratio > 99.9%"')
PLOTS = ("latency.png", "cache-by-gap.png", "cost.png", "throughput.png")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    sc = base / "fast.toml"
    sc.write_text(SCENARIO)
    assert main(["run", str(sc), "--out", str(base / "out"), "--quiet"]) == 0
    (d,) = (base / "out").iterdir()
    return d


@pytest.fixture(scope="module")
def reported(run_dir) -> tuple[Path, str]:
    """`loadgen report DIR` once (it writes plots and report.html): (dir, printed text)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", str(run_dir)]) == 0
    return run_dir, buf.getvalue()


def _copy(run_dir: Path, tmp_path: Path, scenario_text: str) -> Path:
    d = tmp_path / run_dir.name
    shutil.copytree(run_dir, d, ignore=shutil.ignore_patterns("plots", "report.html"))
    (d / "scenario.toml").write_text(scenario_text)
    return d


def test_report_prints_per_arm_detail_and_thresholds(reported):
    run_dir, out = reported
    for heading in ("Requests (attempts", "Prompt cache", "Cost (USD)", "Latency", "Throughput against the quota",
                    "Cache warm ratio by gap", "Arms compared with the first", "Thresholds"):
        assert heading in out
    assert "nocache vs cached: cost per 1000 +" in out          # no cache costs more
    assert "100,000" in out                                       # the scenario's TPM quota
    assert "cached   warm_ratio > 50%" in out and "PASS  measured" in out
    assert "cached   p95(e2e) < 60s" in out                      # p95 read from the .hlog files
    assert "FAIL" not in out
    for name in PLOTS:
        assert (run_dir / "plots" / name).stat().st_size > 10_000
    assert (run_dir / "report.html").exists()


def test_a_failing_threshold_exits_1_with_a_clear_line(run_dir, tmp_path, capsys):
    d = _copy(run_dir, tmp_path, FAILING)
    assert main(["report", str(d), "--no-plots"]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "warm_ratio > 99.9%" in ln)
    assert line.startswith("cached ") and "FAIL  measured" in line and "(limit > 99.90 %)" in line
    assert not (d / "plots").exists() and not (d / "report.html").exists()   # --no-plots writes nothing


def test_after_run_writes_plots_and_page_and_returns_the_threshold_verdict(run_dir, tmp_path, capsys):
    d = _copy(run_dir, tmp_path, SCENARIO)
    summary = load_summary(d)
    assert after_run(d, summary, loads(SCENARIO, "fast.toml")) == 0
    out = capsys.readouterr().out
    assert "thresholds:" in out and f"report: {d / 'report.html'}" in out
    assert all((d / "plots" / name).exists() for name in PLOTS)
    assert after_run(d, summary, loads(FAILING, "fast.toml")) == 1
    assert "warm_ratio > 99.9%  FAIL" in capsys.readouterr().out


def test_report_json_is_machine_readable(run_dir, capsys):
    assert main(["report", str(run_dir), "--format", "json", "--no-plots"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["summary"]["arms"]) == {"cached", "nocache"}
    assert doc["quota"]["cached"] == {"tpm": 100000, "rpm": 0}
    assert doc["thresholds_failed"] == 0
    assert {(t["arm"], t["expr"], t["status"]) for t in doc["thresholds"]} >= {("cached", "warm_ratio > 50%", "PASS")}
    assert doc["compare"]["baseline"] == "cached"
    # burndown (5x output for Claude 4.x) makes the quota peak larger than summary.json's
    assert doc["tpm_peak_burndown"]["nocache"] > doc["summary"]["arms"]["nocache"]["tpm_peak"]


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "action", "data", "poster", "background") and v is not None:
                self.refs.append(v)


def test_report_html_is_self_contained(reported):
    run_dir, _ = reported
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    p = _Refs()
    p.feed(text)
    assert p.refs, "expected embedded images and anchors"
    outside = [r for r in p.refs if not (r.startswith("data:") or r.startswith("#"))]
    assert outside == []
    assert sum(r.startswith("data:image/png;base64,") for r in p.refs) == len(PLOTS)
    assert "script" not in p.tags and "link" not in p.tags
    assert "url(" not in text and "@import" not in text
    assert "warm_ratio &gt; 50%" in text and "nocache vs cached" in text


def test_plots_are_pngs_of_a_readable_size(reported):
    from PIL import Image

    run_dir, _ = reported
    for name in PLOTS:
        with Image.open(run_dir / "plots" / name) as im:
            assert im.format == "PNG" and im.size[0] >= 800 and im.size[1] >= 400


def test_report_without_summary_is_bad_input(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err


def test_a_copied_scenario_that_no_longer_validates_still_gives_its_thresholds(run_dir, tmp_path):
    # e.g. a trace file next to the original scenario does not travel with the copy
    d = _copy(run_dir, tmp_path, FAILING.replace('[model]', 'bogus_key = 1\n[model]'))
    view = load_view(d)
    assert any("thresholds read from its [thresholds] table" in n for n in view.notes)
    assert len(view.thresholds) == 5
    assert main(["report", str(d), "--no-plots"]) == 1


def test_rpm_and_tpm_thresholds_measure_the_peaks_the_quota_table_shows(run_dir, tmp_path, capsys):
    # rpm once was an average over the run (seed-reference: 4 requests "measured" 8 /min) and
    # tpm a token sum with cache reads and no burndown; both must be the quota's figures.
    d = _copy(run_dir, tmp_path, SCENARIO.replace('all = ["p99(ttft) < 60s", "throttle_rate < 1%"]',
                                                  'all = ["rpm < 1000", "tpm < 1"]'))
    assert main(["report", str(d), "--format", "json", "--no-plots"]) == 1
    doc = json.loads(capsys.readouterr().out)
    got = {(t["arm"], t["expr"]): t["measured"] for t in doc["thresholds"]}
    for arm, a in doc["summary"]["arms"].items():
        assert got[(arm, "rpm < 1000")] == a["rpm_peak"]
        assert got[(arm, "tpm < 1")] == doc["tpm_peak_burndown"][arm]
    # the cached arm reads ~5000 tokens per call: not in its quota peak
    assert got[("cached", "tpm < 1")] < got[("nocache", "tpm < 1")]


def _killed_copy(run_dir: Path, tmp_path: Path) -> Path:
    """What SIGKILL leaves: scenario.toml and requests.jsonl, its last line torn mid-write."""
    d = tmp_path / run_dir.name
    d.mkdir()
    shutil.copy(run_dir / "scenario.toml", d)
    shutil.copy(run_dir / "requests.jsonl", d)
    with open(d / "requests.jsonl", "a", encoding="utf-8") as f:
        f.write('{"arm":"cached","session":99,"tu')
    return d


def test_a_killed_run_is_reported_from_requests_jsonl(run_dir, tmp_path):
    d = _killed_copy(run_dir, tmp_path)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", str(d)]) == 0            # the scenario's thresholds still pass
    out = buf.getvalue()
    assert out.startswith("REBUILT: ") and "the run did not finish" in out
    assert "stopped: killed (rebuilt from requests.jsonl)" in out
    assert "cached   p95(e2e) < 60s" in out and "no histogram" not in out   # percentiles from memory
    assert all((d / "plots" / name).stat().st_size > 10_000 for name in PLOTS)
    assert (d / "report.html").exists()
    assert not (d / "summary.json").exists()            # report never pretends the run finished
    assert sorted(p.name for p in d.iterdir()) == ["plots", "report.html", "requests.jsonl", "scenario.toml"]


def test_a_rebuilt_summary_has_the_figures_the_finished_run_wrote(run_dir, tmp_path, capsys):
    d = _killed_copy(run_dir, tmp_path)
    assert main(["report", str(d), "--format", "json", "--no-plots"]) == 0
    doc = json.loads(capsys.readouterr().out)
    got, want = doc["summary"], load_summary(run_dir)
    assert doc["rebuilt"] is True and got["stopped"] == "killed (rebuilt from requests.jsonl)"
    # no run.json (a directory from before it existed): the clock by run's rule from the
    # copied scenario.toml (it said "unknown")
    assert (got["clock"], got["time_scale"]) == (want["clock"], want["time_scale"]) == ("warp", 60)
    assert got["clock_source"] == "scenario.toml"
    assert main(["report", str(d), "--no-plots"]) == 0
    assert "clock warp x60 (as scenario.toml sets it; no run.json)" in capsys.readouterr().out
    assert list(got["arms"]) == list(want["arms"])
    for name, w in want["arms"].items():
        g = got["arms"][name]
        for key in ("requests", "cache", "tokens", "errors", "gap_buckets", "rpm_peak", "tpm_peak", "model_id",
                    "cache_ttl"):
            assert g[key] == w[key], (name, key)
        for k, v in w["cost_usd"].items():               # buckets re-priced with the scenario's prices
            assert g["cost_usd"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), (name, k)
        # exact: Metrics rounds times to 1 us as requests.jsonl stores them
        assert g["latency_ms"] == w["latency_ms"] and g["latency_clamped"] == w["latency_clamped"], name


_DROP = object()


def _key_paths(obj, prefix=(), depth=3):
    if depth == 0 or not isinstance(obj, dict):
        return
    for k, v in obj.items():
        yield prefix + (k,)
        yield from _key_paths(v, prefix + (k,), depth - 1)


def _mutated(summary, path, bad):
    s = copy.deepcopy(summary)
    node = s
    for k in path[:-1]:
        node = node[k]
    if bad is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = bad
    return s


def test_every_damaged_summary_is_a_clear_error_or_a_full_report(run_dir):
    # Delete or retype every key (down to arms.<arm>.<table>.<figure>): validate_summary
    # names the key (report exits 2), or every renderer copes with what is left.
    view = load_view(run_dir)
    base = {**view.summary, "arms": {"cached": view.summary["arms"]["cached"]}}   # one arm is enough
    rendered = rejected = 0
    for path in _key_paths(base, depth=4):
        for bad in (_DROP, 5, "x", None):
            s = _mutated(base, path, bad)
            try:
                validate_summary(s)
            except ValueError as e:
                assert str(e).startswith("summary.json: ") and "expected" in str(e), (path, bad)
                rejected += 1
                continue
            v = dataclasses.replace(view, summary=s)
            results = check_thresholds(v)
            report_text(v, results)
            json.dumps(report_dict(v, results), default=str)
            html_report.render(v, results, detail_tables(v), [])
            [compare(g) for g in groups_for([("r", s)]) if g]
            rendered += 1
    assert rejected > 50 and rendered > 50


def test_percentile_lookups_read_each_hlog_once(tmp_path, monkeypatch):
    m = Metrics([ArmInfo("a", "m", "geo", "5m")])
    for i in range(4):
        m.record(Attempt("a", i, 0, 1, 0.0, 0.0, 0.1 * (i + 1), 1.0, "ok", None, "m", "geo", None))
    with ResultsDir(tmp_path) as out:
        out.write_histograms(m, scenario_s=1.0)
    reads = []
    real = read_histogram
    monkeypatch.setattr(verdicts, "read_histogram", lambda p: reads.append(p.name) or real(p))
    get = percentile_from_histograms(tmp_path)
    assert get("a", "ttft", 50.0) == pytest.approx(200, rel=1e-2)
    assert get("a", "ttft", 100.0) == pytest.approx(400, rel=1e-2)
    assert get("a", "e2e", 99.0) == pytest.approx(1000, rel=1e-2)
    assert get("b", "ttft", 99.0) is None and get("b", "ttft", 50.0) is None
    assert sorted(reads) == ["a.e2e.hlog", "a.ttft.hlog"]
