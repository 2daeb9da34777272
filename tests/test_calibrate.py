"""`loadgen calibrate`: the emulator's latency model fitted back from attempts made with known
parameters.

Tolerances (stated in README and docs/emulator.md): from 4,000 synthetic attempts, the
slopes and medians come back within 5 % (the cache-read slope, 20x smaller than the
prefill slope, within 15 %), the sigmas within 10 %, the cross-Region penalty within
15 ms. From a `loadgen simulate` run of ~1,000 attempts, the same keys within twice that.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import signal
import subprocess
import sys
import urllib.request
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.api.setup import load_scenario
from loadgen.commands.cli import main
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.config_file import load_config_file
from loadgen.results.calibration import CalibrationError, calibrate

TRUE = {"ttft_s": 0.45, "ttft_sigma": 0.3, "prefill_s_per_1k": 0.04, "cache_read_s_per_1k": 0.004,
        "tokens_per_s": 90.0, "tokens_per_s_sigma": 0.2, "cross_region_s": 0.12}
TOLERANCE = {"ttft_s": 0.05, "ttft_sigma": 0.10, "prefill_s_per_1k": 0.05, "cache_read_s_per_1k": 0.15,
             "tokens_per_s": 0.05, "tokens_per_s_sigma": 0.10}
CROSS_TOLERANCE_S = 0.015
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
DEFAULT_LATENCY = EmulatorConfig.defaults().latency
DEFAULTS = dataclasses.asdict(DEFAULT_LATENCY)


def synthetic(n: int, seed: int, true: dict = TRUE, *, same_size: bool = False) -> list[dict]:
    """requests.jsonl lines drawn from the emulator's latency model with `true` parameters:
    varied prompt sizes, half of them reading a cached prefix, a third served outside the
    caller's Region (us-east-1), plus throttles and a few 10x slow responses (outliers)."""
    rng = random.Random(seed)
    out = []
    t = 0.0
    for i in range(n):
        t += rng.expovariate(5.0)
        prompt = 3000 if same_size else rng.randint(50, 20000)
        read = rng.choice((0, rng.randint(1000, 60000))) if not same_size else 0
        write = rng.choice((0, rng.randint(0, 5000))) if not same_size else 0
        served = "us-west-2" if rng.random() < 1 / 3 else "us-east-1"
        if rng.random() < 0.05:
            out.append({"arm": "a", "status": "throttled", "error_code": "ThrottlingException", "start": t,
                        "first_token": None, "end": t + 0.05, "model_id": "us." + MODEL, "profile": "geo",
                        "region": served, "input_tokens": 0, "cache_read": 0, "cache_write": 0,
                        "output_tokens": 0})
            continue
        base = true["ttft_s"] * math.exp(true["ttft_sigma"] * rng.gauss(0, 1))
        ttft = (base + true["prefill_s_per_1k"] * (prompt + write) / 1000 + true["cache_read_s_per_1k"] * read / 1000
                + (true["cross_region_s"] if served != "us-east-1" else 0.0))
        if rng.random() < 0.01:
            ttft *= 10   # a slow-stream fault
        speed = true["tokens_per_s"] * math.exp(true["tokens_per_s_sigma"] * rng.gauss(0, 1))
        n_out = rng.randint(2, 900)
        end = ttft + (n_out - 1) / speed
        out.append({"arm": "a", "status": "ok", "error_code": None, "start": round(t, 6),
                    "first_token": round(t + ttft, 6), "end": round(t + end, 6), "model_id": "us." + MODEL,
                    "profile": "geo", "region": served, "input_tokens": prompt, "cache_read": read,
                    "cache_write": write, "output_tokens": n_out})
    return out


def _check(values: dict, true: dict, factor: float = 1.0) -> None:
    for key, tol in TOLERANCE.items():
        assert values[key] == pytest.approx(true[key], rel=tol * factor), key
    assert abs(values["cross_region_s"] - true["cross_region_s"]) <= CROSS_TOLERANCE_S * factor


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_parameters_come_back_within_tolerance(seed):
    cal = calibrate(synthetic(4000, seed), defaults=DEFAULTS, caller_region="us-east-1")
    _check(cal.latency(), TRUE)
    assert cal.unidentified == ()
    # queueing is not fitted from one run: shipped values, marked as such
    assert [p.key for p in cal.params if not p.fitted] == ["queue_knee", "queue_max_s"]
    assert cal.cross_basis == "served Region"
    excluded = dict(cal.excluded)
    assert excluded["throttled"] > 100
    # the 10x slow responses are set aside, not fitted
    assert 20 <= sum(n for why, n in excluded.items() if why.startswith("outliers")) <= 70
    assert cal.ttft.r2 > 0.7 and cal.e2e.r2 > 0.8


SCALED_KEYS = ("ttft_s", "prefill_s_per_1k", "cache_read_s_per_1k", "cross_region_s")


@settings(max_examples=20, deadline=None)
@given(k=st.floats(min_value=0.2, max_value=5.0), seed=st.integers(min_value=0, max_value=50))
def test_times_scaled_by_k_scale_the_fit_by_k(k, seed):
    """Every time k times longer: the ttft terms come back k times larger, the output speed
    k times smaller, the spreads unchanged, the same attempts set aside."""
    recs = synthetic(300, seed)
    scaled = [dict(r, first_token=None if r["first_token"] is None else r["start"] + k * (r["first_token"] - r["start"]),
                   end=r["start"] + k * (r["end"] - r["start"])) for r in recs]
    a = calibrate(recs, defaults=DEFAULTS, caller_region="us-east-1")
    b = calibrate(scaled, defaults=DEFAULTS, caller_region="us-east-1")
    for key in SCALED_KEYS:
        assert b.value(key) == pytest.approx(k * a.value(key), rel=1e-6, abs=1e-12), key
    assert b.value("tokens_per_s") == pytest.approx(a.value("tokens_per_s") / k, rel=1e-6)
    for key in ("ttft_sigma", "tokens_per_s_sigma"):
        assert b.value(key) == pytest.approx(a.value(key), rel=1e-6), key
    assert a.excluded == b.excluded


def test_several_models_need_a_choice_and_the_others_are_counted_out():
    recs = synthetic(600, 8)
    for r in recs[::3]:
        r["model_id"] = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    with pytest.raises(CalibrationError, match="several models .*choose one with --model"):
        calibrate(recs, defaults=DEFAULTS, caller_region="us-east-1")
    cal = calibrate(recs, defaults=DEFAULTS, caller_region="us-east-1", model="us." + MODEL)
    assert cal.model == MODEL
    assert dict(cal.excluded)["another model (anthropic.claude-sonnet-4-5-20250929-v1:0)"] > 150
    with pytest.raises(CalibrationError, match="no ok, streamed attempt of amazon.nova-pro-v1:0"):
        calibrate(recs, defaults=DEFAULTS, caller_region="us-east-1", model="amazon.nova-pro-v1:0")


def test_without_served_regions_the_profile_stands_for_cross_region():
    """Against AWS the records carry no served Region: a geo/global call against an
    in-Region one is what the penalty is fitted from."""
    recs = synthetic(3000, 9)
    for r in recs:
        r["profile"] = "geo" if r["region"] != "us-east-1" else "region"
        r["model_id"] = ("us." + MODEL) if r["profile"] == "geo" else MODEL
        r["region"] = None
    cal = calibrate(recs, defaults=DEFAULTS, caller_region="us-east-1")
    assert cal.cross_basis == "profile"
    assert abs(cal.value("cross_region_s") - TRUE["cross_region_s"]) <= CROSS_TOLERANCE_S
    assert [g for g, _, _ in cal.base_by_profile] == ["geo", "region"]


def _write_run(tmp_path: Path, records: list[dict], region: str = "us-east-1") -> Path:
    d = tmp_path / "run"
    d.mkdir()
    (d / "requests.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (d / "run.json").write_text(json.dumps({"region": region}))
    return d


def test_cli_writes_a_table_that_loads_in_the_emulator_and_a_scenario(tmp_path, capsys):
    d = _write_run(tmp_path, synthetic(3000, 7))
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(d), "--out", str(out)]) == 0
    text = out.read_text()
    assert "R^2" in text and "[emulator.latency]" in text
    cfg = load_config_file(str(out))   # what `loadgen emulator --config` reads
    _check({k: getattr(cfg.latency, k) for k in TRUE}, TRUE, factor=1.5)
    assert (tmp_path / "cal.png").stat().st_size > 10_000
    # an existing file is never overwritten unless asked
    assert main(["calibrate", str(d), "--out", str(out), "--no-plot"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["calibrate", str(d), "--out", str(out), "--no-plot", "--force"]) == 0
    # without --out: printed, and the plot goes to the results directory
    capsys.readouterr()
    assert main(["calibrate", str(d)]) == 0
    assert capsys.readouterr().out.strip() == text.strip()
    assert (d / "plots" / "calibration.png").is_file()


def test_format_json_prints_one_document_with_the_fit_and_the_table(tmp_path, capsys):
    d = _write_run(tmp_path, synthetic(3000, 7))
    assert main(["calibrate", str(d), "--no-plot", "--format", "json"]) == 0
    io = capsys.readouterr()
    doc = json.loads(io.out)   # stdout is the document alone
    assert doc["kind"] == "calibrate" and doc["out"] is None and doc["plot"] is None
    assert doc["latency"] == {p["key"]: p["value"] for p in doc["params"]}
    _check({k: doc["latency"][k] for k in TRUE}, TRUE, factor=1.5)
    fitted = {p["key"]: p for p in doc["params"] if p["fitted"]}
    assert set(fitted) == set(TRUE) and fitted["tokens_per_s"]["stderr"] > 0  # queueing is never fitted
    assert doc["used"] > 2000 and doc["ttft"]["r2"] > 0.5 and doc["e2e"]["n"] > 0
    assert "[emulator.latency]" in doc["table"] and "calibrated" in io.err
    # with --out the table is written and the document says where; bad input leaves stdout empty
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(d), "--no-plot", "--format", "json", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(out) and out.is_file()
    assert main(["calibrate", str(d), "--no-plot", "--format", "json", "--out", str(out)]) == 2
    assert capsys.readouterr().out == ""


def test_all_requests_the_same_size_is_refused_naming_the_parameter(tmp_path, capsys):
    d = _write_run(tmp_path, synthetic(500, 4, same_size=True))
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(d), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot fit prefill_s_per_1k: every attempt had the same uncached or written input tokens (3000)" in err
    assert "cannot fit cache_read_s_per_1k" in err and "--keep-defaults" in err
    assert "Traceback" not in err and not out.exists()
    # asked to, it keeps the shipped values and says so in the table
    assert main(["calibrate", str(d), "--out", str(out), "--keep-defaults", "--no-plot"]) == 0
    text = out.read_text()
    assert "prefill_s_per_1k = 0.03 " in text and "DEFAULT kept: every attempt had the same" in text
    assert load_config_file(str(out)).latency.prefill_s_per_1k == DEFAULT_LATENCY.prefill_s_per_1k


def test_nothing_to_fit_is_a_one_line_error(tmp_path, capsys):
    d = _write_run(tmp_path, [r for r in synthetic(200, 5) if r["status"] != "ok"])
    assert main(["calibrate", str(d)]) == 2
    err = capsys.readouterr().err
    assert "no ok, streamed attempt to fit" in err and "throttled" in err
    assert main(["calibrate", str(tmp_path / "missing")]) == 2
    assert "no requests.jsonl" in capsys.readouterr().err
    # a non-streaming run: the first token arrives with the last, so TTFT was never seen
    with pytest.raises(CalibrationError, match=r"\d+ not streamed .*\[model\] stream = true"):
        calibrate([dict(r, first_token=r["end"]) for r in synthetic(200, 5)], defaults=DEFAULTS,
                  caller_region="us-east-1")


def test_damaged_or_thin_input_is_refused_in_one_line(tmp_path, capsys):
    recs = synthetic(50, 6)
    d = _write_run(tmp_path, recs[:8])
    assert main(["calibrate", str(d), "--no-plot"]) == 2
    assert "calibrate needs at least 10" in capsys.readouterr().err
    (d / "requests.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "start"}) + "\n"
                                              for r in recs))
    assert main(["calibrate", str(d), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "a record is not a loadgen attempt (KeyError: 'start')" in err and "Traceback" not in err
    (d / "requests.jsonl").write_text("{not json\n" + json.dumps(recs[0]) + "\n")
    assert main(["calibrate", str(d), "--no-plot"]) == 2
    assert "requests.jsonl:1: not a JSON attempt record" in capsys.readouterr().err
    assert main(["calibrate", str(d), "--out", str(tmp_path / "x.png")]) == 2
    assert "name it .toml" in capsys.readouterr().err


SIMULATED = {"ttft_s": 0.5, "ttft_sigma": 0.2, "prefill_s_per_1k": 0.05, "cache_read_s_per_1k": 0.01,
             "tokens_per_s": 80.0, "tokens_per_s_sigma": 0.15, "cross_region_s": 0.2}


@pytest.mark.slow
def test_simulated_run_round_trips_through_calibrate_and_back_into_a_scenario(tmp_path, capsys):
    """The emulator's own model in `simulate` with a chosen [emulator] table; calibrate
    recovers it, and the fitted table, pasted into a scenario, simulates again."""
    lat = ", ".join(f"{k} = {v}" for k, v in SIMULATED.items())
    scenario = tmp_path / "s.toml"
    head = textwrap.dedent(f"""\
        name = "cal"
        seed = 3
        duration = "5m"

        [model]
        id = "anthropic.claude-haiku-4-5-20251001-v1:0"
        max_tokens = 2000

        [workload]
        kind = "single"
        prefix_tokens = 20000
        question_tokens = {{ dist = "uniform", low = 100, high = 12000 }}
        output_tokens = {{ dist = "uniform", low = 20, high = 1200 }}

        [arrivals]
        kind = "poisson"
        rate = "50/m"

        [[arms]]
        name = "in-region"
        cache_ttl = "5m"

        [[arms]]
        name = "in-region-uncached"
        cache = false

        [[arms]]
        name = "geo-uncached"
        profile = "geo"
        cache = false
        """)
    emulator = textwrap.dedent(f"""\

        [emulator]
        latency = {{ preset = "realistic", {lat} }}

        [emulator.quotas]
        tpm = 100000000

        [emulator.routing]
        region_capacity_tpm = 0

        # us-east-1 browned out without errors: the geo profile steers to another Region
        [[emulator.faults.brownouts]]
        region = "us-east-1"
        start = "0s"
        end = "2h"
        error_rate = 0.0
        """)
    scenario.write_text(head + emulator)
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    (run,) = (tmp_path / "r").iterdir()
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(run), "--out", str(out), "--no-plot"]) == 0
    cfg = load_config_file(str(out))
    _check({k: getattr(cfg.latency, k) for k in SIMULATED}, SIMULATED, factor=2.0)

    # the fitted table as a scenario's [emulator] table: checked as a run checks it
    fitted = tmp_path / "fitted.toml"
    fitted.write_text(head + "\n" + out.read_text())
    assert load_scenario(fitted).emulator["latency"]["ttft_s"] == cfg.latency.ttft_s
    capsys.readouterr()
    assert main(["validate", str(fitted)]) == 0


@pytest.mark.slow
def test_shipped_calibration_scenario_recovers_the_shipped_preset(tmp_path, capsys):
    """scenarios/calibration.toml (README's calibration run) simulated on the shipped
    `realistic` preset: calibrate refuses cross_region_s (the emulator served every call in
    the caller's Region) and, with --keep-defaults, recovers the preset it ran on."""
    scenario = Path(__file__).resolve().parent.parent / "scenarios" / "calibration.toml"
    assert main(["simulate", str(scenario), "--out", str(tmp_path / "r"), "--quiet"]) == 0
    (run,) = (tmp_path / "r").iterdir()
    capsys.readouterr()
    assert main(["calibrate", str(run), "--no-plot"]) == 2
    assert "cannot fit cross_region_s: every attempt was served in the caller's Region" in capsys.readouterr().err
    assert main(["calibrate", str(run), "--no-plot", "--keep-defaults"]) == 0
    out = tmp_path / "cal.toml"
    out.write_text(capsys.readouterr().out)
    fitted = load_config_file(str(out)).latency
    for key in ("ttft_s", "prefill_s_per_1k", "tokens_per_s"):
        assert getattr(fitted, key) == pytest.approx(getattr(DEFAULT_LATENCY, key), rel=0.1), key
    assert fitted.cross_region_s == DEFAULT_LATENCY.cross_region_s


@pytest.mark.slow
def test_loadgen_emulator_serves_the_written_table(tmp_path):
    """`loadgen emulator --config` on the table calibrate wrote: it starts with the fitted
    latency and answers a Converse call; stopping it is a clean exit."""
    d = _write_run(tmp_path, synthetic(1000, 12))
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(d), "--out", str(out), "--no-plot"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--port", "0", "--config", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.strip().split()[-1]
        body = {"messages": [{"role": "user", "content": [{"text": "Hi. Reply with about 5 tokens."}]}],
                "inferenceConfig": {"maxTokens": 50}}
        req = urllib.request.Request(f"{url}/model/{MODEL}/converse", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            modelled_end = float(resp.headers["x-loadgen-modelled-end-s"])
            assert json.loads(resp.read())["usage"]["outputTokens"] == 5
        assert 0.05 < modelled_end < 5.0     # the fitted ttft (median 0.45 s) plus 4 tokens at ~90/s
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "latency realistic+custom" in err
