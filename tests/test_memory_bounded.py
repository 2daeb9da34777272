"""Memory bounded end to end: the report streams requests.jsonl, the plan never draws the
whole schedule. Each test would fail if its stage held every attempt (or request)."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import pytest

from loadgen.api.plan import EXACT_PLAN_MAX, plan
from loadgen.api.plan_text import render
from loadgen.engine import schedule
from loadgen.report import artifacts
from loadgen.report.verdicts import check_thresholds
from loadgen.report.view import load_view
from loadgen.scenario import loads

SCENARIO = """\
name = "mem"
seed = 1
duration = "600s"

[target]
region = "us-east-1"

[model]
id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 20
output_tokens = 100

[arrivals]
kind = "constant"
rate = "{rate}/s"

[[arms]]
name = "a"

[[arms]]
name = "b"
cache_ttl = "1h"
"""


def _killed_run(d: Path, n: int) -> Path:
    """A results directory of a run killed after `n` attempts over 600 s: requests.jsonl only."""
    d.mkdir()
    (d / "scenario.toml").write_text(SCENARIO.format(rate=1))
    with open(d / "requests.jsonl", "w") as f:
        for i in range(n):
            t = 600.0 * i / n
            f.write(json.dumps({
                "arm": "ab"[i % 2], "session": i, "turn": 0, "attempt": 1, "intended": t, "start": t,
                "first_token": t + 0.3, "end": t + 0.9 + (i % 7) * 0.1, "status": "ok", "error_code": None,
                "model_id": "us.anthropic.claude-haiku-4-5-20251001-v1:0", "profile": "geo", "region": None,
                "gap_s": 1.0 + i % 400, "cache_state": "warm" if i % 3 else "cold", "cost_usd": 0.001,
                "input_tokens": 20, "output_tokens": 100, "cache_read": 5000, "cache_write": 0,
                "wall_start": 1e9 + t}) + "\n")
    return d


def _view_peak(d: Path) -> tuple[float, object]:
    tracemalloc.start()
    try:
        view = load_view(d)
        return tracemalloc.get_traced_memory()[1] / 2**20, view
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # two results directories read under tracemalloc: a few seconds
def test_report_view_memory_does_not_grow_with_the_attempts(tmp_path):
    small, _ = _view_peak(_killed_run(tmp_path / "small", 1_000))
    big, view = _view_peak(_killed_run(tmp_path / "big", 4_000))
    # held whole, 3,000 more attempt dicts are ~4 MB; streamed, the state is the same size
    assert big - small < 1.5, (small, big)
    assert view.summary["arms"]["a"]["requests"]["sent"] == 2_000
    assert view.series.attempts == 4_000 and view.series.peaks_exact


@pytest.mark.slow  # draws the four plots: a few seconds
def test_plots_and_page_never_read_the_attempts_again(tmp_path, monkeypatch):
    d = _killed_run(tmp_path / "run", 2_000)
    view = load_view(d)

    def no_second_read(path):
        raise AssertionError("requests.jsonl read again after load_view folded it")
        yield  # a generator, like load_attempts: the error comes only if it is iterated

    monkeypatch.setattr(artifacts, "load_attempts", no_second_read)
    written, html, warnings = artifacts.write_artifacts(view, check_thresholds(view))
    assert not warnings and html is not None and len(written) == 4


def test_a_2_4_million_request_aws_plan_is_drawn_from_a_sample(tmp_path, monkeypatch):
    sc = loads(SCENARIO.format(rate=4000).replace('region = "us-east-1"', 'kind = "aws"\nregion = "us-east-1"'),
               str(tmp_path / "aws.toml"))
    drawn = 0
    real = schedule.open_loop

    def counted(*args, **kw):
        nonlocal drawn
        for item in real(*args, **kw):
            drawn += 1
            yield item

    monkeypatch.setattr(schedule, "open_loop", counted)
    cpu = time.process_time()
    p = plan(sc)
    assert p.requests == 2_400_000 and all(a.requests == 2_400_000 for a in p.arms)   # the exact count
    assert p.sample < 0.01 and drawn <= 1.1 * EXACT_PLAN_MAX   # a thinned sample, never the schedule
    assert "estimated" in render(p)                             # and the plan says so
    assert time.process_time() - cpu < 20
