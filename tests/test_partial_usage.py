"""A stream that fails after tokens were delivered is billed, and says which figures are estimates.

Bedrock sends no usage for a ConverseStream that ends in an exception event or a
dropped connection, yet the prompt was processed (and cached) and output delivered.
loadgen records the delivered output (counted from the deltas) and its own estimate
of the input/cache split, flagged `usage_estimated` (docs/emulator.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.catalog import pricing
from loadgen.commands.cli import main

HAIKU_US = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

# Open loop, one request every 10 s (far apart: each sees the first one's cache entry in run
# and simulate alike, even when a busy machine delays the first send), deterministic latency,
# 40 % of streams fail part-way.
MIDSTREAM = f"""
name = "midstream"
seed = 5
duration = "100s"

[target]
time_scale = 10

[model]
id = "{HAIKU_US}"
max_tokens = 300
stream = true

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = 20
output_tokens = {{{{ dist = "constant", value = 200 }}}}

[arrivals]
kind = "constant"
rate = "6/m"

[retry]
policy = "off"

[emulator]
latency = {{{{ preset = "realistic", ttft_sigma = 0, tokens_per_s_sigma = 0 }}}}
faults = {{{{ {{faults}} }}}}

[[arms]]
name = "a"
"""


def _results(out: Path) -> tuple[dict, list[dict]]:
    (d,) = list(out.iterdir())
    lines = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines()]
    return json.loads((d / "summary.json").read_text()), sorted(lines, key=lambda x: x["session"])


def _check_partial_billing(summary: dict, lines: list[dict]) -> None:
    arm = summary["arms"]["a"]
    failed = [x for x in lines if x["status"] != "ok"]
    partial = [x for x in failed if x["first_token"] is not None]
    assert partial, "the fault config must cut some streams after their first delta"
    for x in partial:
        # before: 0 tokens and $0 for every one of these
        assert x["usage_estimated"] is True
        assert 0 < x["output_tokens"] < 200  # the deltas delivered, not the whole reply
        assert x["input_tokens"] + x["cache_read"] + x["cache_write"] == 5000 + 19  # the whole prompt
        assert x["cache_read"] == 5000  # the prefix, written by the first request, read
        usage = {"inputTokens": x["input_tokens"], "outputTokens": x["output_tokens"],
                 "cacheReadInputTokens": x["cache_read"], "cacheWriteInputTokens": x["cache_write"]}
        assert x["cost_usd"] == pytest.approx(pricing.cost(HAIKU_US, usage, cache_ttl="5m"), rel=1e-9)
        assert x["cost_usd"] > 0
    for x in lines:
        if x not in partial:
            assert x["usage_estimated"] is False
    # every dollar in the records is in the summary, and the estimated part is named
    assert sum(x["cost_usd"] for x in lines) == pytest.approx(arm["cost_usd"]["total"], abs=1e-9)
    assert arm["usage_estimated"]["attempts"] == len(partial)
    assert arm["usage_estimated"]["cost_usd"] == pytest.approx(sum(x["cost_usd"] for x in partial), abs=1e-9)
    assert arm["tokens"]["output"] == sum(x["output_tokens"] for x in lines)


@pytest.mark.parametrize("faults", ["mid_stream_rate = 0.4", "connection_reset_rate = 0.4"])
def test_simulate_bills_streams_that_failed_after_tokens(tmp_path, faults):
    sc = tmp_path / "midstream.toml"
    sc.write_text(MIDSTREAM.format(faults=faults))
    assert main(["simulate", str(sc), "--out", str(tmp_path / "sim"), "--quiet"]) == 0
    _check_partial_billing(*_results(tmp_path / "sim"))


@pytest.mark.slow
def test_run_bills_streams_that_failed_after_tokens_as_simulate_does(tmp_path):
    sc = tmp_path / "midstream.toml"
    sc.write_text(MIDSTREAM.format(faults="mid_stream_rate = 0.4"))
    assert main(["run", str(sc), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["simulate", str(sc), "--out", str(tmp_path / "sim"), "--quiet"]) == 0
    run_summary, run_lines = _results(tmp_path / "run")
    _check_partial_billing(run_summary, run_lines)
    _, sim_lines = _results(tmp_path / "sim")
    fields = ("status", "input_tokens", "output_tokens", "cache_read", "cache_write", "usage_estimated")
    assert [[x[f] for f in fields] for x in run_lines] == [[x[f] for f in fields] for x in sim_lines]
    for a, b in zip(run_lines, sim_lines):
        assert a["cost_usd"] == pytest.approx(b["cost_usd"], rel=1e-12)
