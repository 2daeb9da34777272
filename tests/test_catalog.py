"""The model catalog (issue 11): the models people run on Bedrock, on-demand availability
per model (profile-only models answer a bare id with Bedrock's 400), the context window,
burndown, and nothing about a model written outside loadgen/catalog/data/."""

from __future__ import annotations

import asyncio
import random
import re
from pathlib import Path

import botocore.exceptions
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from loadgen.catalog import models
from loadgen.commands.cli import main
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel, Plan
from loadgen.emulator.server import serve
from loadgen.catalog.pricing import default_table
from loadgen.scenario import load

from emulator_fakes import HAIKU, NOVA_MICRO, SONNET37, FakeClock  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET4 = "anthropic.claude-sonnet-4-20250514-v1:0"
GPT_OSS = "openai.gpt-oss-120b-1:0"
EXPECTED = {
    "anthropic.claude-haiku-4-5-20251001-v1:0", SONNET45, "anthropic.claude-opus-4-5-20251101-v1:0",
    SONNET4, "anthropic.claude-opus-4-1-20250805-v1:0", SONNET37,
    "anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-haiku-20240307-v1:0",
    "amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0", "amazon.nova-premier-v1:0",
    "amazon.nova-2-lite-v1:0", GPT_OSS, "openai.gpt-oss-20b-1:0",
}
# The exact text Bedrock sends, U+2019 apostrophe included (anthropics/anthropic-sdk-python#894).
ON_DEMAND = ("Invocation of model ID {} with on-demand throughput isn\u2019t supported. Retry your request "
             "with the ID or ARN of an inference profile that contains this model.")


# ---------------------------------------------------------------- the data

def test_catalog_holds_the_models_people_run_and_each_row_is_coherent():
    cat = models.catalog()
    assert EXPECTED <= set(cat)
    for mid, info in cat.items():
        assert info.context_window > info.max_output_tokens > 0, mid
        assert info.output_burndown in (1, 5), mid
        assert info.lifecycle in ("active", "legacy", "deprecated"), mid
        assert (info.lifecycle == "legacy") == bool(info.eol), mid
        assert "default" in info.service_tiers and set(info.service_tiers) <= {"default", "priority", "flex", "reserved"}
        assert info.in_region == bool(info.in_region_regions), mid
        assert info.in_region or info.geo_profiles or info.global_profile, f"{mid}: no way to call it"
        if info.caching:
            assert info.cache_min_tokens >= 1024 and info.max_cache_checkpoints == 4, mid
        else:
            assert info.cache_min_tokens == 0 and info.cache_ttls == (), mid


def test_catalog_values_the_issue_names():
    c = models.catalog()
    # AWS's user guide lists Claude 3.7 Sonnet at 5x (global-cross-region-inference.html)
    assert c[SONNET37].output_burndown == 5
    assert not c[SONNET37].in_region_at("us-east-1") and c[SONNET37].in_region_at("eu-west-2")
    assert not c[SONNET45].in_region and not c[SONNET4].in_region
    assert c[HAIKU].in_region_at("us-east-1") and not c[HAIKU].in_region_at("us-west-2")
    assert c["amazon.nova-2-lite-v1:0"].service_tiers == ("default", "priority", "flex")
    assert c[HAIKU].service_tiers == ("default", "reserved")
    assert c["anthropic.claude-3-5-haiku-20241022-v1:0"].eol == "2026-06-19"
    assert (c[GPT_OSS].context_window, c[GPT_OSS].caching, c[GPT_OSS].geo_profiles) == (128_000, False, ())


def test_assumed_values_are_marked_in_the_data_file():
    text = (ROOT / "loadgen" / "catalog" / "data" / "models.toml").read_text()
    for model in ("Haiku 4.5", "Opus 4.5"):
        block = text.split(f'name = "Claude {model}"', 1)[1].split("\n[", 1)[0]
        burn = block[:block.index("output_burndown")]
        assert "ASSUMPTION" in burn and "[QDASH]" in burn, model  # 5x rests on an AWS sample only


def test_only_what_exists_is_priced():
    t = default_table()
    for mid, info in models.catalog().items():
        assert ((mid, "region") in t.rows) == info.in_region, mid
        assert ((mid, "geo") in t.rows) == bool(info.geo_profiles), mid
        assert ((mid, "global") in t.rows) == info.global_profile, mid
        assert t.model_family[mid] == info.family


def test_no_model_id_is_written_in_code_outside_the_data_files():
    ids = set(models.catalog())
    # usage examples in help text name one model; nothing else may
    allowed = {("sections.py", HAIKU), ("sweep.py", HAIKU)}
    found = []
    for py in (ROOT / "loadgen").rglob("*.py"):
        text = py.read_text()
        for mid in ids:
            if mid in text and (py.name, mid) not in allowed:
                found.append(f"{py.relative_to(ROOT)}: {mid}")
    assert found == []


def test_pricing_command_lists_the_new_models(capsys):
    assert main(["pricing"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(ln.split()[:2]) for ln in out.splitlines() if re.match(r"^[a-z]+\.", ln)}
    assert (GPT_OSS, "region") in rows and ("amazon.nova-2-lite-v1:0", "global") in rows
    assert (SONNET45, "region") not in rows and (SONNET45, "global") in rows
    gpt = next(ln for ln in out.splitlines() if ln.startswith(GPT_OSS))
    assert "0.15" in gpt and "0.60" in gpt


# ---------------------------------------------------------------- the emulator

def _model(region="us-east-1"):
    cfg = EmulatorConfig.from_mapping({"latency": "fast"})
    return EmulatorModel(cfg, clock=FakeClock(), rng=random.Random(1), region=region)


def _body(text="Hello. Reply with about 10 tokens.", **extra):
    return {"messages": [{"role": "user", "content": [{"text": text}]}], "inferenceConfig": {"maxTokens": 100},
            **extra}


@pytest.mark.parametrize("mid", [SONNET45, SONNET4, SONNET37, "amazon.nova-2-lite-v1:0"])
def test_bare_id_of_a_profile_only_model_gets_bedrocks_400(mid):
    r = _model().begin(mid, _body(), stream=False)
    assert not isinstance(r, Plan)
    assert (r.status, r.code, r.message) == (400, "ValidationException", ON_DEMAND.format(mid))
    # the profiles that exist keep working
    assert isinstance(_model().begin(f"us.{mid}", _body(), stream=False), Plan)
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{mid}"
    assert _model().begin(arn, _body(), stream=False).message == ON_DEMAND.format(mid)


def test_bare_id_works_where_the_model_is_served_in_region():
    for mid in (HAIKU, NOVA_MICRO, GPT_OSS):
        assert isinstance(_model().begin(mid, _body(), stream=False), Plan), mid
    assert isinstance(_model("eu-west-2").begin(SONNET37, _body(), stream=False), Plan)
    r = _model("us-west-2").begin(HAIKU, _body(), stream=False)  # Haiku 4.5: not in-Region in Oregon
    assert r.message == ON_DEMAND.format(HAIKU)


def test_profile_only_answer_over_the_wire_with_a_real_client():
    async def go():
        clock = FakeClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
        async with serve(model, clock) as url:
            async with get_session().create_client(
                "bedrock-runtime", region_name="us-east-1", endpoint_url=url, aws_access_key_id="x",
                aws_secret_access_key="x", config=AioConfig(retries={"total_max_attempts": 1}),
            ) as c:
                with pytest.raises(botocore.exceptions.ClientError) as e:
                    await c.converse(modelId=SONNET45, messages=_body()["messages"])
                err = e.value.response
                assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
                assert (err["Error"]["Code"], err["Error"]["Message"]) == ("ValidationException",
                                                                           ON_DEMAND.format(SONNET45))
                r = await c.converse(modelId=f"global.{SONNET45}", messages=_body()["messages"])
                assert r["stopReason"] == "end_turn"
    asyncio.run(go())


def test_prompt_above_the_context_window_is_rejected_with_bedrocks_text():
    m = _model()
    at = _body("x" * 4 * 200_000)                      # 200,000 tokens: fits
    assert isinstance(m.begin(f"global.{SONNET45}", at, stream=False), Plan)
    over = _body("x" * 4 * 200_000 + "y" * 4 * 49)     # 200,049 tokens
    r = m.begin(f"global.{SONNET45}", over, stream=False)
    assert (r.status, r.code) == (400, "ValidationException")
    assert r.message == ("The model returned the following errors: prompt is too long: 200049 tokens > "
                         "200000 maximum")
    r = m.begin(NOVA_MICRO, _body("x" * 4 * 128_001), stream=False)
    assert r.message == "Input is too long for requested model."


def test_a_model_without_caching_refuses_a_cache_point():
    body = _body(system=[{"text": "s" * 4 * 2000}, {"cachePoint": {"type": "default"}}])
    r = _model().begin(GPT_OSS, body, stream=False)
    assert (r.status, r.code) == (400, "ValidationException") and "not supported" in r.message


# ---------------------------------------------------------------- validate and the shipped scenarios

def test_steady_chat_compares_three_profiles_that_really_exist():
    sc = load(str(ROOT / "scenarios" / "steady-chat.toml"))
    assert {a.profile for a in sc.arms} == {"region", "geo", "global"}
    for arm in sc.arms:
        info = models.lookup(arm.model_id)
        if arm.profile == "region":
            assert info.in_region_at(sc.target.region)
        assert default_table().price(arm.model_id)


def test_validate_fails_a_region_arm_of_a_profile_only_model(tmp_path, capsys):
    path = ROOT / "tests" / "bad_scenarios" / "profile_only_region_arm.toml"
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{path}:21: arms[0].profile: Claude Sonnet 4.5 is not served on demand by its bare id in us-east-1" in err
    assert f"us.{SONNET45}, global.{SONNET45}" in err and "eu." not in err


def test_region_arm_keeps_working_for_a_model_that_offers_it(tmp_path, capsys):
    text = (ROOT / "tests" / "bad_scenarios" / "profile_only_region_arm.toml").read_text()
    path = tmp_path / "ok.toml"
    path.write_text(text.replace(SONNET45, HAIKU).replace("  # expect:", "  # was:"))
    assert main(["validate", str(path)]) == 0
    assert f"arm in-region: {HAIKU} (region profile)" in capsys.readouterr().out
    eu = tmp_path / "eu.toml"  # Claude 3.7 Sonnet is served in-Region in London only
    eu.write_text(text.replace(SONNET45, SONNET37).replace('[model]', '[target]\nregion = "eu-west-2"\n\n[model]')
                  .replace("  # expect:", "  # was:"))
    assert main(["validate", str(eu)]) == 0


def test_validate_warns_about_a_legacy_model(tmp_path, capsys):
    text = (ROOT / "tests" / "bad_scenarios" / "profile_only_region_arm.toml").read_text()
    path = tmp_path / "legacy.toml"
    # Claude 3.5 Haiku: AWS "Legacy (EOL: 2026-06-19)"; in-Region in us-west-2 only
    path.write_text(text.replace(SONNET45, "anthropic.claude-3-5-haiku-20241022-v1:0")
                    .replace("[model]", '[target]\nregion = "us-west-2"\n\n[model]').replace("  # expect:", "  # was:"))
    assert main(["validate", str(path)]) == 0
    err = capsys.readouterr().err
    assert "AWS lists Claude 3.5 Haiku as Legacy (end of life 2026-06-19" in err
