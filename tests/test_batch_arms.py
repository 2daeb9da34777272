"""Batch arms beside on-demand arms, at the user's level: a scenario file with one arm of
each, through `loadgen simulate` (virtual time, the emulator's job store in-process) and
`loadgen run` (the emulator's control plane and moto's S3 over HTTP)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from loadgen.api.batch_setup import inprocess_batch
from loadgen.api.inprocess import InProcessTransport
from loadgen.api.session import new_metrics, run_facts
from loadgen.catalog import pricing
from loadgen.commands.cli import main
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.engine.batch_jobs import BatchLimits, parse_output, record_line, split
from loadgen.engine.clock import VirtualClock
from loadgen.engine.runner import Limits, Runner
from loadgen.results.rebuild import rebuild_summary
from loadgen.scenario import loads
from result_files import only_dir, read_results

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def scenario(tmp_path: Path, *, rate: str = "1/s", duration: str = "150s", cache: bool = False,
             extra: str = "", name: str = "batch-vs-od") -> Path:
    text = textwrap.dedent(f"""\
        name = "{name}"
        seed = 7
        duration = "{duration}"
        {extra}
        [model]
        id = "{MODEL}"
        max_tokens = 300
        stream = true

        [workload]
        kind = "single"
        prefix_tokens = 5000
        question_tokens = 50
        output_tokens = {{ dist = "lognormal", median = 200, p90 = 400 }}

        [arrivals]
        kind = "constant"
        rate = "{rate}"

        [[arms]]
        name = "on-demand"
        cache = {str(cache).lower()}

        [[arms]]
        name = "batch"
        mode = "batch"
        cache = {str(cache).lower()}
        """)
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def by_arm(lines: list[dict], arm: str) -> dict[int, dict]:
    return {r["session"]: r for r in lines if r["arm"] == arm}


# --------------------------------------------------------------------------- simulate

def test_simulate_batch_arm_takes_every_request_at_half_price(tmp_path, capsys):
    path = scenario(tmp_path)
    assert main(["simulate", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary, lines = read_results(only_dir(tmp_path / "out"))
    od, b = by_arm(lines, "on-demand"), by_arm(lines, "batch")
    assert len(od) == len(b) == 150 and set(od) == set(b)   # the same seeded requests
    assert all(r["status"] == "ok" and r["first_token"] is None for r in b.values())
    # same request bodies, so the same tokens; without a cache the batch record costs half
    for i in od:
        assert (b[i]["input_tokens"], b[i]["output_tokens"]) == (od[i]["input_tokens"], od[i]["output_tokens"])
        assert b[i]["cost_usd"] == pytest.approx(od[i]["cost_usd"] / 2, abs=1e-9)
    arm = summary["arms"]["batch"]
    assert arm["mode"] == "batch" and "mode" not in summary["arms"]["on-demand"]
    assert arm["cost_usd"]["total"] == pytest.approx(summary["arms"]["on-demand"]["cost_usd"]["total"] / 2)
    bt = arm["batch"]
    assert (bt["jobs"], bt["jobs_by_status"], bt["records"], bt["records_ok"]) == (1, {"Completed": 1}, 150, 150)
    # submitted when the last record arrived (t = 149 s); the realistic preset then waits
    # 30 + 120 + 900 s and runs 500 records a minute
    assert bt["queue_wait_s"]["p50"] == pytest.approx(1050, abs=15)
    assert bt["job_duration_s"]["p50"] == pytest.approx(1050 + 150 * 60 / 500, abs=1)
    assert bt["time_to_last_result_s"] > 149 + bt["job_duration_s"]["p50"]
    assert arm["latency_ms"]["ttft"]["count"] == 0 and arm["latency_ms"]["ttft_all"]["count"] == 0
    assert summary["arms"]["on-demand"]["last_result_s"] == pytest.approx(150, abs=5)
    out = capsys.readouterr().out
    assert "batch arm" in out and "1 (1 Completed)" in out
    # a killed run's summary, rebuilt from requests.jsonl, has the same batch figures and bill
    rebuilt, _ = rebuild_summary(lines, loads(path.read_text(), str(path)))
    assert rebuilt["arms"]["batch"] == arm and rebuilt["arms"]["on-demand"] == summary["arms"]["on-demand"]


def test_cache_pricing_stacked_and_unstacked_side_by_side(tmp_path, capsys):
    path = scenario(tmp_path, cache=True)
    assert main(["simulate", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary, lines = read_results(only_dir(tmp_path / "out"))
    b = list(by_arm(lines, "batch").values())
    table = pricing.default_table()
    fam = table.family_of(MODEL)
    row = table.price(MODEL)
    stacked = unstacked = 0.0
    for r in b:
        usage = {"inputTokens": r["input_tokens"], "outputTokens": r["output_tokens"],
                 "cacheReadInputTokens": r["cache_read"], "cacheWriteInputTokens": r["cache_write"]}
        s = pricing.cost(MODEL, usage, batch=True)
        # unstacked: every input token at the batch input price, cache markers ignored
        u = ((r["input_tokens"] + r["cache_read"] + r["cache_write"]) * row.input_per_mtok
             + r["output_tokens"] * row.output_per_mtok) * fam.batch / 1e6
        assert r["cost_stacked_usd"] == pytest.approx(s, abs=1e-9)
        assert r["cost_unstacked_usd"] == pytest.approx(u, abs=1e-9)
        stacked, unstacked = stacked + s, unstacked + u
    cost = summary["arms"]["batch"]["batch"]["cost_usd"]
    assert cost["cache_pricing"] == table.batch_cache == "stacked"
    assert cost["stacked"] == pytest.approx(stacked) and cost["unstacked"] == pytest.approx(unstacked)
    assert cost["unstacked"] > cost["stacked"]   # a 5,000-token prefix read by almost every record
    assert summary["arms"]["batch"]["cost_usd"]["total"] == pytest.approx(stacked)
    assert main(["compare", str(only_dir(tmp_path / "out"))]) == 0
    out = capsys.readouterr().out
    assert "batch, cache unstacked" in out and "time to last result" in out


def test_a_job_below_the_minimum_fails_visibly_and_loses_no_record(tmp_path, capsys):
    path = scenario(tmp_path, duration="50s")  # 50 records: below Bedrock's minimum of 100
    assert main(["validate", str(path)]) == 0
    assert "below Bedrock's minimum of 100" in capsys.readouterr().out
    assert main(["simulate", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary, lines = read_results(only_dir(tmp_path / "out"))
    arm = summary["arms"]["batch"]
    assert arm["requests"] == {**arm["requests"], "sent": 50, "ok": 0, "error": 50}
    assert arm["errors"] == {"BatchJobFailed": 50}
    assert arm["batch"]["jobs_by_status"] == {"Failed": 1} and arm["batch"]["records_not_completed"] == 50
    assert arm["cost_usd"]["total"] == 0
    msg = next(r["message"] for r in lines if r["arm"] == "batch")
    assert "fewer than the minimum of 100" in msg
    assert summary["arms"]["on-demand"]["requests"]["ok"] == 50


def test_records_split_into_even_jobs_within_the_quota(tmp_path):
    assert split(50_001, 50_000) == [25_001, 25_000]
    assert split(250, 100) == [84, 83, 83]
    assert BatchLimits(file_size_bytes=1000, job_size_bytes=5000).records_per_job_for(10) == 100
    path = scenario(tmp_path, duration="250s")
    sc = loads(path.read_text(), str(path))
    # a records-per-job quota of 120: three jobs (84 + 83 + 83), each below the emulator's
    # minimum of 100, so each fails as Bedrock fails it; 125: two jobs, every record answered once
    summary = _simulate(sc, limits=BatchLimits(records_per_job=120, records_per_file=120))
    bt = summary["arms"]["batch"]["batch"]
    assert (bt["jobs"], bt["jobs_by_status"], bt["records_not_completed"]) == (3, {"Failed": 3}, 250)
    summary = _simulate(sc, limits=BatchLimits(records_per_job=125, records_per_file=125))
    bt = summary["arms"]["batch"]["batch"]
    assert (bt["jobs"], bt["jobs_by_status"], bt["records_ok"]) == (2, {"Completed": 2}, 250)


def test_jsonl_records_are_converse_bodies_with_their_cache_points():
    params = {"modelId": MODEL, "serviceTier": {"type": "flex"},
              "system": [{"text": "x"}, {"cachePoint": {"type": "default", "ttl": "1h"}}],
              "messages": [{"role": "user", "content": [{"text": "q"}]}], "inferenceConfig": {"maxTokens": 5}}
    line = json.loads(record_line(42, params))
    assert line["recordId"] == "r0000000042"
    assert line["modelInput"] == {k: v for k, v in params.items() if k not in ("modelId", "serviceTier")}
    out = parse_output(b'{"recordId":"r0000000042","modelInput":{},"modelOutput":{"usage":{"inputTokens":3}}}\n'
                       b'not json\n'
                       b'{"recordId":"r0000000043","modelInput":{},"error":{"errorCode":400,"errorMessage":"bad"}}\n')
    assert [(o.record_id, o.usage, o.error_code) for o in out] == [
        ("r0000000042", {"inputTokens": 3}, None), ("r0000000043", None, 400)]


# --------------------------------------------------------------------------- interrupts and limits

def _simulate(sc, *, stop_at: float | None = None, limits: BatchLimits | None = None,
              max_cost: float | None = None) -> dict:
    """The scenario through a Runner on a VirtualClock with the in-process job store; a
    Ctrl-C (runner.stop("interrupted")) at scenario second `stop_at`. Returns a summary."""
    clock = VirtualClock()
    metrics = new_metrics(sc)
    cfg = EmulatorConfig.from_mapping(sc.emulator, source=sc.path)
    pricer = pricing.pricer(pricing.table_for(sc.pricing))
    holder: dict = {}

    async def go() -> None:
        model = EmulatorModel(cfg, clock=clock, rng=random.Random(f"{sc.seed}:emulator"), region=sc.target.region)
        batch = inprocess_batch(sc, clock, cfg)
        if limits is not None:
            batch = type(batch)(**{**vars(batch), "limits": lambda _m: limits})
        runner = Runner(sc, InProcessTransport(model, clock), clock, sink=lambda a, c: metrics.record(a, c),
                        pricer=pricer, limits=Limits(max_cost_usd=max_cost), batch=batch)
        holder["runner"] = runner

        async def interrupt() -> None:
            await clock.sleep_until(stop_at)
            runner.stop("interrupted")

        async with anyio.create_task_group() as tg:
            if stop_at is not None:
                tg.start_soon(interrupt)
            await runner.run()
            tg.cancel_scope.cancel()

    anyio.run(go, backend_options={"loop_factory": clock.loop_factory})
    return metrics.summary(run_facts(sc, clock, 0.0, holder["runner"].stop_reason))


def test_ctrl_c_counts_the_records_of_unfinished_jobs_as_not_completed(tmp_path):
    path = scenario(tmp_path, duration="250s")
    sc = loads(path.read_text(), str(path))
    # two jobs of 125: Ctrl-C at 199.5 s, when the first (submitted at 124 s) waits in Bedrock's
    # queue and the second holds 75 records not yet submitted; later arrivals are never sent
    summary = _simulate(sc, stop_at=199.5, limits=BatchLimits(records_per_job=125, records_per_file=125))
    arm = summary["arms"]["batch"]
    assert arm["requests"]["sent"] == 200 and arm["requests"]["ok"] == 0
    assert arm["errors"] == {"BatchNotCompleted": 125, "BatchNotSubmitted": 75}
    assert arm["batch"]["records_not_completed"] == 200
    assert arm["batch"]["jobs_by_status"] == {"Stopping": 1}   # asked to stop as the run ended
    assert summary["arms"]["on-demand"]["requests"]["sent"] == summary["arms"]["on-demand"]["requests"]["ok"]
    assert 195 <= summary["arms"]["on-demand"]["requests"]["sent"] <= 201


def test_max_cost_covers_the_batch_arm(tmp_path):
    path = scenario(tmp_path, duration="250s")
    sc = loads(path.read_text(), str(path))
    sc = sc.__class__(**{**vars(sc), "arms": tuple(a for a in sc.arms if a.mode == "batch")})
    cap = 1.0
    summary = _simulate(sc, max_cost=cap)
    arm = summary["arms"]["batch"]
    # each record reserves its worst case at the batch price (all 5,050 input tokens written
    # at the 1h rate, 300 output: about $0.0064), so about 156 fit under $1; at the on-demand
    # price it would be half as many
    assert 150 <= arm["requests"]["sent"] < 250           # admission stopped at the cap
    assert arm["cost_usd"]["total"] <= cap
    assert arm["requests"]["ok"] == arm["requests"]["sent"]  # what was admitted still ran


# --------------------------------------------------------------------------- run, over HTTP

@pytest.mark.slow
def test_run_against_the_emulator_over_http(tmp_path, capsys):
    path = scenario(tmp_path, rate="5/s", duration="30s")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet", "--time-scale", "10"]) == 0
    summary, lines = read_results(only_dir(tmp_path / "out"))
    od, b = by_arm(lines, "on-demand"), by_arm(lines, "batch")
    assert len(od) == len(b) == 150
    assert all(r["status"] == "ok" and r["batch_status"] == "Completed" for r in b.values())
    for i in od:
        assert b[i]["cost_usd"] == pytest.approx(od[i]["cost_usd"] / 2, abs=1e-9)
    bt = summary["arms"]["batch"]["batch"]
    assert bt["jobs_by_status"] == {"Completed": 1} and bt["records_ok"] == 150
    assert bt["job_duration_s"]["p50"] >= 1050   # the realistic preset, in warped scenario time


@pytest.mark.slow  # a loadgen process interrupted after its first answers: about 4 s
def test_ctrl_c_during_a_run_books_every_collected_record(tmp_path):
    # fast latency: the requests in flight at Ctrl-C end at once, not after up to 5 s of
    # grace; the warp clock then skips the idle gaps, so the scenario is long enough that
    # it is still collecting batch records when the interrupt comes
    path = scenario(tmp_path, rate="20/s", duration="600s", extra='[emulator]\nlatency = "fast"\n')
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "run", str(path), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30

    def on_demand_answers() -> int:
        return sum(f.read_text().count('"arm":"on-demand"') for f in out.glob("*/requests.jsonl"))

    # wait for answers, not for the file or a fixed time: the directory (and an empty
    # requests.jsonl) exists while moto's S3 is still starting, and a busy machine can take
    # seconds over that. More than 10 on-demand answers (written each second): the batch
    # job's records are still arriving, none submitted yet
    while time.monotonic() < deadline and on_demand_answers() <= 10:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    summary, lines = read_results(only_dir(out))
    b = summary["arms"]["batch"]
    od = summary["arms"]["on-demand"]["requests"]["sent"]
    # every record that arrived before Ctrl-C is booked, as not submitted: its job never was
    assert b["errors"] == {"BatchNotSubmitted": b["requests"]["sent"]} and b["requests"]["ok"] == 0
    assert abs(b["requests"]["sent"] - od) <= 2 and od > 10
    assert len(by_arm(lines, "batch")) == b["requests"]["sent"]
    assert os.path.exists(only_dir(out) / "summary.json")
