"""Quota reservation when a request omits maxTokens (issue 11, item 2).

Bedrock defaults an omitted maxTokens to the model's maximum output (botocore
InferenceConfiguration.maxTokens) and reserves input + maxTokens against the TPM quota at
the start of the request. Before this change the emulator reserved 4,096 and scenarios
silently sent maxTokens = 512.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from loadgen.commands.cli import main
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel, Plan
from loadgen.emulator.request import parse
from loadgen.catalog.models import lookup
from loadgen.api.plan import plan
from loadgen.scenario import load, loads
from loadgen.engine.workload import ArmWorkload

from emulator_fakes import HAIKU, NOVA_MICRO, FakeClock  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NO_MAX = ROOT / "tests" / "quota_scenarios" / "no_max_tokens.toml"


def _model(table=None):
    clock = FakeClock()
    cfg = EmulatorConfig.from_mapping({"latency": "fast", **(table or {})})
    return EmulatorModel(cfg, clock=clock, rng=random.Random(1)), clock


def _body(max_tokens=None):
    b = {"messages": [{"role": "user", "content": [{"text": "p" * 4 * 5000 + " Reply with about 20 tokens."}]}]}
    if max_tokens is not None:
        b["inferenceConfig"] = {"maxTokens": max_tokens}
    return b


def test_omitted_max_tokens_reserves_the_models_maximum_output():
    m, _ = _model()
    p = m.begin(HAIKU, _body(), stream=False)
    assert isinstance(p, Plan)
    inp = p.usage.input_tokens
    assert m.quota_used(HAIKU) == inp + 64_000          # was inp + 4,096
    m.finish(p)
    assert m.quota_used(HAIKU) == inp + 20 * 5         # settled: input + output x burndown


@pytest.mark.parametrize("mid, expect", [(HAIKU, 64_000), (NOVA_MICRO, 10_000),
                                         ("anthropic.claude-3-5-haiku-20241022-v1:0", 8192)])
def test_parse_defaults_max_tokens_to_the_catalog_maximum(mid, expect):
    req = parse(_body(), lookup(mid))
    assert req.max_tokens == expect == lookup(mid).max_output_tokens
    assert parse(_body(300), lookup(mid)).max_tokens == 300


def test_emulator_config_can_still_pin_a_default_but_not_above_the_model():
    assert EmulatorConfig.defaults().default_max_tokens is None        # "model"
    m, _ = _model({"default_max_tokens": 4096})
    p = m.begin(HAIKU, _body(), stream=False)
    assert m.quota_used(HAIKU) == p.usage.input_tokens + 4096
    assert parse(_body(), lookup(NOVA_MICRO), 50_000).max_tokens == 10_000
    with pytest.raises(ValueError, match='default_max_tokens.*positive integer or "model"'):
        EmulatorConfig.from_mapping({"default_max_tokens": "max"})


def test_scenario_without_max_tokens_omits_maxTokens_from_the_request():
    sc = load(str(NO_MAX))
    (arm,) = sc.arms
    assert (arm.max_tokens_set, arm.max_tokens) == (False, 64_000)
    params = _first_params(sc, arm)
    assert "maxTokens" not in params.get("inferenceConfig", {})
    with_max = loads(NO_MAX.read_text().replace('[model]\n', '[model]\nmax_tokens = 500\n'), str(NO_MAX))
    (arm2,) = with_max.arms
    assert (arm2.max_tokens_set, arm2.max_tokens) == (True, 500)
    assert _first_params(with_max, arm2)["inferenceConfig"]["maxTokens"] == 500


def _first_params(sc, arm) -> dict:
    from loadgen.engine import schedule
    _, _, sizes = next(iter(schedule.open_loop(sc)))
    return ArmWorkload(sc, arm).single(0, sizes).params


def test_validate_warns_and_shows_the_reservation(capsys):
    assert main(["validate", str(NO_MAX)]) == 0
    out, err = capsys.readouterr()
    assert f"{NO_MAX}:9: model: max_tokens is not set" in err
    assert "reserves 64,000 tokens per request against your TPM quota" in err
    assert "max_tokens omitted (reserves 64,000)" in out
    assert "reservation  input + 64,000" in out
    assert "the 2,000,000 TPM quota holds about 29 such requests in flight" in out
    p = plan(load(str(NO_MAX)))
    assert p.arms[0].reserve_max == 5020 + 64_000


def test_validate_shows_a_set_max_tokens_and_does_not_warn(tmp_path, capsys):
    path = tmp_path / "set.toml"
    path.write_text(NO_MAX.read_text().replace("[model]\n", "[model]\nmax_tokens = 500\n"))
    assert main(["validate", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "reservation  input + 500 (max_tokens) = 5,520 tokens per request" in out


def _requests(out_dir: Path) -> list[dict]:
    (d,) = [x for x in out_dir.iterdir() if x.is_dir()]
    return [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines() if x.strip()]


def test_simulate_throttles_at_about_29_in_flight_without_max_tokens(tmp_path):
    """The issue's done-when: 5k-token prompts, no max_tokens, 2M TPM: throttles at ~29 in
    flight; the same traffic with max_tokens = 500 does not throttle at all."""
    assert main(["simulate", str(NO_MAX), "--out", str(tmp_path / "omit"), "--quiet"]) == 0
    rows = _requests(tmp_path / "omit")
    throttled = [r for r in rows if r["status"] == "throttled"]
    assert throttled and all(r["error_code"] == "ThrottlingException" for r in throttled)
    first = min(throttled, key=lambda r: r["start"])
    in_flight = sum(1 for r in rows if r["status"] == "ok" and r["start"] <= first["start"] < r["end"])
    assert in_flight == 28          # 28 x 69,020 = 1.93M; the 29th would pass 2,000,000

    path = tmp_path / "set.toml"
    path.write_text(NO_MAX.read_text().replace("[model]\n", "[model]\nmax_tokens = 500\n"))
    assert main(["simulate", str(path), "--out", str(tmp_path / "set"), "--quiet"]) == 0
    rows = _requests(tmp_path / "set")
    assert rows and all(r["status"] == "ok" for r in rows)
    assert max(sum(1 for r in rows if r["start"] <= t < r["end"]) for t in (x["start"] for x in rows)) > 29
