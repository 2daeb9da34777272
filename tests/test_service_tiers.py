"""Converse serviceTier: validated, echoed, queued and priced as Bedrock does (docs/emulator.md)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import botocore.exceptions
import pytest

from loadgen.catalog import pricing
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.scenario import ScenarioError, load

from emulator_fakes import FakeClock  # noqa: E402
from test_emulator_server import emulator, run  # noqa: E402

GPT = "openai.gpt-oss-120b-1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


def body(tier=None, model=GPT, prompt_tokens=100, max_tokens=100):
    p = {"modelId": model,
         "messages": [{"role": "user", "content": [{"text": "q" * 4 * prompt_tokens + " Reply with about 10 tokens."}]}],
         "inferenceConfig": {"maxTokens": max_tokens}}
    if tier is not None:
        p["serviceTier"] = {"type": tier}
    return p


# --------------------------------------------------------------------------- wire (aiobotocore)

def test_tier_is_echoed_in_converse_and_in_the_stream_metadata_event():
    async def go():
        async with emulator() as (c, _, _m):
            r = await c.converse(**body("flex"))
            assert r["serviceTier"] == {"type": "flex"}
            r = await c.converse(**body())
            assert "serviceTier" not in r
            s = await c.converse_stream(**body("priority"))
            meta = [e["metadata"] async for e in s["stream"] if "metadata" in e]
            assert meta[0]["serviceTier"] == {"type": "priority"}
            assert meta[0]["usage"]["outputTokens"] == 10
    run(go())


@pytest.mark.parametrize("tier, model, message", [
    ("turbo", GPT, "service tier provided is invalid"),
    ("flex", HAIKU, "does not support the flex service tier"),
    ("reserved", HAIKU, "Reservation not found."),
    ("reserved", GPT, "does not support the reserved service tier"),
])
def test_bad_tiers_get_bedrocks_validation_errors(tier, model, message):
    async def go():
        async with emulator() as (c, _, _m):
            b = body(tier, model=model)
            with pytest.raises(botocore.exceptions.ClientError) as e:
                await c.converse(**b)
            err = e.value.response["Error"]
            assert err["Code"] == "ValidationException"
            assert message in err["Message"]
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    run(go())


# --------------------------------------------------------------------------- contention (model)

def test_flex_throttles_first_on_the_shared_quota_and_default_still_gets_the_rest():
    clock = FakeClock()
    cfg = EmulatorConfig.from_mapping({"latency": "fast", "quotas": {"tpm": 10_000, "rpm": 0, "region": {"tpm": 10_000, "rpm": 0}}})
    m = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
    b = body(prompt_tokens=1000, max_tokens=1000)   # reserves ~2,007 tokens
    flex = {**b, "serviceTier": {"type": "flex"}}
    del flex["modelId"], b["modelId"]
    ok = 0
    while not hasattr(r := m.begin(GPT, flex, stream=False), "code"):
        ok += 1
    assert r.code == "ThrottlingException"
    assert ok == 3            # 3 x 2,007 fits under 80 % of 10,000; a fourth would not
    assert not hasattr(m.begin(GPT, b, stream=False), "code")      # default uses the shared rest
    assert m.begin(GPT, b, stream=False).code == "ThrottlingException"  # 5 x 2,007 > 10,000


def test_priority_skips_the_queue_and_flex_waits_longer_at_a_busy_region():
    def ttft(tier):
        clock = FakeClock()
        cfg = EmulatorConfig.from_mapping({"latency": {"ttft_s": 0.1, "ttft_sigma": 0.0, "tokens_per_s": 0,
                                                       "queue_knee": 0.1, "queue_max_s": 4.0},
                                           "routing": {"region_capacity_tpm": 4000, "spill_at": 1.0}})
        m = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
        b = body(tier, prompt_tokens=1000, max_tokens=1000)
        del b["modelId"]
        return m.begin(GPT, b, stream=False).ttft_s
    assert ttft("priority") < ttft(None) < ttft("flex")


# --------------------------------------------------------------------------- pricing

def test_each_tier_is_priced_from_the_catalog():
    usage = {"inputTokens": 1_000_000, "outputTokens": 1_000_000}
    assert pricing.cost(GPT, usage) == pytest.approx(0.15 + 0.60)
    assert pricing.cost(GPT, usage, tier="default") == pytest.approx(0.75)
    assert pricing.cost(GPT, usage, tier="flex") == pytest.approx(0.075 + 0.30)
    assert pricing.cost(GPT, usage, tier="priority") == pytest.approx(0.2625 + 1.05)
    assert pricing.cost("global.amazon.nova-2-lite-v1:0", usage, tier="flex") == pytest.approx(0.15 + 1.25)
    with pytest.raises(pricing.PricingError, match="no flex service-tier price"):
        pricing.cost("us.anthropic.claude-haiku-4-5-20251001-v1:0", usage, tier="flex")


def test_every_model_offering_a_tier_has_a_price_for_it_on_every_priced_row():
    from loadgen.catalog.models import catalog
    t = pricing.default_table()
    for mid, info in catalog().items():
        for tier in set(info.service_tiers) & {"priority", "flex"}:
            for (bare, kind), row in t.rows.items():
                if bare == mid:
                    assert tier in row.tiers, (mid, kind, tier)


# --------------------------------------------------------------------------- scenario and CLI

SCENARIO = """\
name = "tiers"
seed = 3
duration = "2m"

[model]
id = "openai.gpt-oss-120b-1:0"
max_tokens = 200

[workload]
kind = "single"
prefix_tokens = 1000
question_tokens = 300
output_tokens = 100

[arrivals]
kind = "constant"
rate = "1/s"

[[arms]]
name = "standard"
cache = false
{default_tier}

[[arms]]
name = "flex"
cache = false
service_tier = "{tier}"
"""


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "s.toml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def test_an_arm_asking_for_a_tier_its_model_does_not_offer_names_file_line_key(tmp_path):
    path = write(tmp_path, SCENARIO.format(default_tier="", tier="flex").replace(
        'id = "openai.gpt-oss-120b-1:0"', 'id = "anthropic.claude-haiku-4-5-20251001-v1:0"'))
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert e.value.problems == [
        f"{path}:27: arms[1].service_tier: model anthropic.claude-haiku-4-5-20251001-v1:0 (Claude Haiku 4.5) "
        "does not offer tier 'flex', offered: default, reserved (models.toml service_tiers)"]


def test_reserved_is_refused_against_the_emulator(tmp_path):
    path = write(tmp_path, SCENARIO.format(default_tier="", tier="reserved").replace(
        'id = "openai.gpt-oss-120b-1:0"', 'id = "anthropic.claude-haiku-4-5-20251001-v1:0"'))
    with pytest.raises(ScenarioError) as e:
        load(path)
    assert "Reservation not found." in e.value.problems[0] and ":27: arms[1].service_tier:" in e.value.problems[0]


def test_simulate_default_vs_flex_on_gpt_oss_shows_the_flex_discount(tmp_path):
    path = write(tmp_path, SCENARIO.format(default_tier='service_tier = "default"', tier="flex"))
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "loadgen", "simulate", path, "--out", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    summary = json.loads(next(out.rglob("summary.json")).read_text())
    arms = summary["arms"]
    std, flex = arms["standard"], arms["flex"]
    assert (std["service_tier"], flex["service_tier"]) == ("default", "flex")
    assert std["requests"]["ok"] == flex["requests"]["ok"] > 100
    assert std["tokens"] == flex["tokens"]
    assert flex["cost_usd"]["total"] == pytest.approx(std["cost_usd"]["total"] / 2)
    cmp = subprocess.run([sys.executable, "-m", "loadgen", "compare", str(next(out.rglob("summary.json")).parent)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stderr
    assert "standard: openai.gpt-oss-120b-1:0 (region), no cache, tier default" in cmp.stdout
    assert "flex: openai.gpt-oss-120b-1:0 (region), no cache, tier flex" in cmp.stdout
    assert "cost per 1000 -50 %" in cmp.stdout
