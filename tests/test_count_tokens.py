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


# --------------------------------------------------------------------------- --target aws sizing

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import textwrap  # noqa: E402

from loadgen.engine import prefix_sizing  # noqa: E402
from loadgen.engine.clock import RealClock  # noqa: E402
from loadgen.emulator.config import EmulatorConfig  # noqa: E402
from loadgen.emulator.model import EmulatorModel  # noqa: E402
from loadgen.emulator.server import serve  # noqa: E402
from loadgen.scenario import load  # noqa: E402
from loadgen.catalog.tokens import count_tokens  # noqa: E402
from loadgen.engine.workload import arm_prefix  # noqa: E402

AWS_SCENARIO = """\
name = "sized"
seed = 4
duration = "{duration}"

[target]
region = "us-east-1"
request_timeout = "5s"

[model]
id = "us.anthropic.claude-sonnet-4-20250514-v1:0"
max_tokens = 64

[workload]
kind = "single"
prefix_tokens = 6000
question_tokens = 12
output_tokens = 20

[arrivals]
kind = "constant"
rate = "2/s"

[retry]
policy = "off"

[[arms]]
name = "a"

[[arms]]
name = "haiku"
model = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
"""


@contextlib.contextmanager
def emulator_thread(chars_per_token: int):
    """An emulator on 127.0.0.1 in its own thread and event loop, on the real clock, whose
    CountTokens counts `chars_per_token` characters per token (a stand-in for a tokenizer
    that disagrees with loadgen's chars/4 rule)."""
    box: dict = {}
    ready = threading.Event()

    async def main():
        clock = RealClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
        model.chars_per_token = chars_per_token
        box["stop"] = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        async with serve(model, clock) as url:
            box["url"] = url
            ready.set()
            await box["stop"].wait()

    t = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        t.join(10)


def test_prefixes_are_resized_to_the_exact_count_of_the_targets_count_tokens(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(AWS_SCENARIO.format(duration="2s")))
    sc = load(str(path))
    from aiobotocore.session import get_session

    async def go(url):
        async with get_session().create_client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                                               aws_access_key_id="x", aws_secret_access_key="x") as c:
            sizes = await prefix_sizing.measure(c, sc, salt="run1")
            a = sizes["a"]
            # loadgen's own rule would send 6000 chars/4 tokens = 8000 tokens at 3 chars per token
            assert count_tokens(arm_prefix(sc, sc.arms[0], "run1")) == 6000
            assert a.measured == 6000 and a.local == 4500 and a.calls <= 1 + prefix_sizing.MAX_CALLS
            # an independent count of the resized prefix, as the run will send it
            text = arm_prefix(sc, sc.arms[0], "run1", a.body_tokens)
            r = await c.count_tokens(modelId="anthropic.claude-sonnet-4-20250514-v1:0",
                                     input={"converse": {"system": [{"text": text}], "messages": [
                                         {"role": "user", "content": [{"text": "Hello."}]}]}})
            assert r["inputTokens"] - 2 == 6000   # "Hello." is 2 tokens at 3 chars per token
            h = sizes["haiku"]                    # CountTokens does not serve Haiku 4.5 (unsourced)
            assert h.measured is None and h.local == 6000 and "refused" in h.note
    with emulator_thread(3) as url:
        asyncio.run(go(url))


@pytest.mark.slow
def test_run_and_validate_target_aws_print_the_measured_counts(tmp_path, monkeypatch, capsys):
    from loadgen.commands.cli import main
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "loadgen-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "loadgen-test")
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(AWS_SCENARIO.format(duration="1s")))
    with emulator_thread(3) as url:
        rc = main(["validate", str(path), "--target", "aws", "--endpoint-url", url])
        out = capsys.readouterr().out
        assert rc == 0
        assert "a: prefix 6000 tokens by anthropic.claude-sonnet-4-20250514-v1:0's CountTokens (target 6000; " \
               "4500 by loadgen's chars/4 rule" in out
        assert "haiku: prefix 6000 tokens by loadgen's rule (target 6000); CountTokens refused" in out
        rc = main(["run", str(path), "--target", "aws", "--endpoint-url", url, "--yes",
                   "--max-requests", "1", "--out", str(tmp_path / "out")])
        out = capsys.readouterr().out
        assert rc == 0, out
        assert "a: prefix 6000 tokens by anthropic.claude-sonnet-4-20250514-v1:0's CountTokens" in out
