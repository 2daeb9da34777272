"""CountTokens: served by the emulator, and used by `--target aws` to size prefixes exactly."""

from __future__ import annotations

import base64
import json

import botocore.exceptions
import pytest

from test_emulator_server import emulator, run  # noqa: E402

SONNET4 = "anthropic.claude-sonnet-4-20250514-v1:0"
HAIKU45 = "anthropic.claude-haiku-4-5-20251001-v1:0"


def converse_input(system_chars=4000, question="How many?"):
    return {"converse": {"system": [{"text": "s" * system_chars}],
                         "messages": [{"role": "user", "content": [{"text": question}]}]}}


def test_count_tokens_counts_a_converse_input_as_converse_usage_would():
    async def go():
        async with emulator() as (c, _, _m):
            r = await c.count_tokens(modelId=SONNET4, input=converse_input())
            assert r["inputTokens"] == 1000 + 3          # 4000 chars + "How many?" (9 chars)
            r = await c.count_tokens(modelId="us." + SONNET4, input=converse_input(system_chars=401))
            assert r["inputTokens"] == 101 + 3
            blob = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
            r = await c.count_tokens(modelId=SONNET4, input={"invokeModel": {"body": blob}})
            assert r["inputTokens"] == -(-len(blob) // 4)
    run(go())


def test_count_tokens_follows_the_emulators_token_rule_when_a_test_changes_it():
    async def go():
        async with emulator() as (c, _, model):
            model.chars_per_token = 3
            r = await c.count_tokens(modelId=SONNET4, input=converse_input(system_chars=3000, question="abc"))
            assert r["inputTokens"] == 1000 + 1
    run(go())


@pytest.mark.parametrize("model_id, text", [
    (HAIKU45, "doesn't support counting tokens"),         # UNSOURCED for Haiku 4.5: not offered
    ("amazon.nova-2-lite-v1:0", "doesn't support counting tokens"),  # model card: not supported
    ("anthropic.nope-v1:0", "The provided model identifier is invalid."),
])
def test_count_tokens_refuses_models_without_it(model_id, text):
    async def go():
        async with emulator() as (c, _, _m):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                await c.count_tokens(modelId=model_id, input=converse_input())
            assert e.value.response["Error"]["Code"] == "ValidationException"
            assert text in e.value.response["Error"]["Message"]
    run(go())


def test_count_tokens_validates_the_converse_input_like_converse():
    async def go():
        async with emulator() as (c, _, _m):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                await c.count_tokens(modelId=SONNET4, input={"converse": {"messages": [
                    {"role": "assistant", "content": [{"text": "x"}]}]}})
            assert "must start with a user message" in e.value.response["Error"]["Message"]
    run(go())
