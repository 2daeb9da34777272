"""Request validation Bedrock does that the emulator must mirror: temperature and topP in
0..1, no empty text blocks. Checked through a real client, as users meet it."""

from __future__ import annotations

import asyncio
import random

import botocore.exceptions
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.model import EmulatorModel, Plan
from loadgen.emulator.server import serve

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"


class FakeClock:
    def now(self) -> float:
        return 0.0

    async def sleep_until(self, t: float) -> None:
        return None


def model() -> EmulatorModel:
    return EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=FakeClock(),
                         rng=random.Random(1))


def body(**ic):
    return {"system": [{"text": "Be brief."}],
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 50, **ic}}


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b["inferenceConfig"].update(temperature=1.5),
     "Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: "
     "Member must have value less than or equal to 1"),
    (lambda b: b["inferenceConfig"].update(temperature=-0.1),
     "Value '-0.1' at 'inferenceConfig.temperature' failed to satisfy constraint: "
     "Member must have value greater than or equal to 0"),
    (lambda b: b["inferenceConfig"].update(topP=1.01),
     "Value '1.01' at 'inferenceConfig.topP' failed to satisfy constraint: "
     "Member must have value less than or equal to 1"),
    (lambda b: b["inferenceConfig"].update(topP="high"), "inferenceConfig.topP: expected a number between 0 and 1"),
    (lambda b: b["messages"][0]["content"].insert(0, {"text": ""}),
     "The text field in the ContentBlock object at messages.0.content.0 is blank. "
     "Add text to the text field, and try again."),
    (lambda b: b["messages"].extend([{"role": "assistant", "content": [{"text": "ok"}, {"text": ""}]},
                                     {"role": "user", "content": [{"text": "go on"}]}]),
     "ContentBlock object at messages.1.content.1 is blank"),
    (lambda b: b["system"].append({"text": ""}), "ContentBlock object at system.1 is blank"),
])
def test_out_of_range_sampling_and_empty_text_are_validation_errors(mutate, message):
    b = body()
    mutate(b)
    r = model().begin(HAIKU, b, stream=False)
    assert isinstance(r, BedrockError) and (r.status, r.code) == (400, "ValidationException")
    assert message in r.message


@pytest.mark.parametrize("ic", [{"temperature": 0}, {"temperature": 1}, {"temperature": 0.7, "topP": 0.9},
                                {"topP": 0}, {"topP": 1.0}])
def test_in_range_values_pass(ic):
    assert isinstance(model().begin(HAIKU, body(**ic), stream=False), Plan)


def test_botocore_user_gets_a_validation_client_error():
    async def go():
        m = model()
        async with serve(m, m.clock) as url:
            async with get_session().create_client(
                "bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                aws_access_key_id="x", aws_secret_access_key="x",
                config=AioConfig(retries={"total_max_attempts": 1}),
            ) as c:
                for kw, needle in [({"inferenceConfig": {"maxTokens": 50, "temperature": 1.2}}, "temperature"),
                                   ({"inferenceConfig": {"maxTokens": 50, "topP": 1.5}}, "topP"),
                                   ({"messages": [{"role": "user", "content": [{"text": ""}]}]}, "is blank")]:
                    params = {"modelId": "us." + HAIKU, "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
                              **kw}
                    for call in (c.converse, c.converse_stream):
                        with pytest.raises(botocore.exceptions.ClientError) as e:
                            await call(**params)
                        assert e.value.response["Error"]["Code"] == "ValidationException"
                        assert needle in e.value.response["Error"]["Message"]
    asyncio.run(go())
