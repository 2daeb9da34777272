"""loadgen's bedrock-runtime client: botocore's parameter validation is off and the
User-Agent is built once, yet a malformed request still fails loudly (the target
validates it), and is recorded as a failed attempt. Real client, emulator on loopback."""

from __future__ import annotations

import asyncio
import random

import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve
from loadgen.engine.clock import RealClock
from loadgen.engine.transport import BedrockTransport

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
GOOD = {"modelId": MODEL, "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": 20}}


def calls(requests, *, stream: bool):
    """Outcomes of `requests` through BedrockTransport against a fresh emulator, and the
    User-Agent headers the client sent."""
    async def go():
        clock = RealClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
        agents = []
        async with serve(model, clock) as url:
            async with BedrockTransport.open(clock, region="us-east-1", endpoint_url=url, max_connections=4,
                                             dummy_credentials=True) as t:
                t.client.meta.events.register(
                    "before-send.bedrock-runtime", lambda request, **_: agents.append(request.headers["User-Agent"]))
                outs = [await t.call(p, stream=stream, timeout=30.0) for p in requests]
        return outs, agents
    return asyncio.run(go())


@pytest.mark.parametrize("stream", [False, True])
def test_a_malformed_request_fails_at_the_target_as_a_validation_error(stream):
    bad = [
        {**GOOD, "messages": [{"role": "user", "content": [{"text": 5}]}]},       # botocore: not a string
        {**GOOD, "messages": [{"role": "user", "content": [{"text": ""}]}]},      # blank text
        {**GOOD, "inferenceConfig": {"maxTokens": 20, "temperature": -1}},        # botocore: below its minimum
    ]
    outs, _ = calls([GOOD, *bad, GOOD], stream=stream)
    # with botocore's validation on, the first and third never left the client (ParamValidationError)
    assert [o.status for o in outs] == ["ok", "error", "error", "error", "ok"]
    for o in outs[1:-1]:
        assert (o.error_code, o.http_status) == ("ValidationException", 400), o.message
        assert o.message


def test_the_user_agent_names_loadgen_and_is_the_same_on_every_call():
    _, agents = calls([GOOD] * 3, stream=False)
    assert len(agents) == 3 and len(set(agents)) == 1
    ua = agents[0].decode() if isinstance(agents[0], bytes) else agents[0]  # signed requests carry bytes
    assert ua.startswith("loadgen/") and "aiobotocore/" in ua and "botocore/" in ua and "Python/" in ua


def test_a_plain_http_endpoint_loads_no_ca_bundle(monkeypatch):
    """Against http:// (the built-in emulator) there is no TLS to verify: the client must
    not read the CA bundle at its first request (~25 ms of CPU that delays the run's
    first requests). The calls still succeed."""
    import ssl

    loads = []
    real = ssl.SSLContext.load_verify_locations
    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations",
                        lambda self, *a, **k: (loads.append(a), real(self, *a, **k))[1])
    outs, _ = calls([GOOD] * 2, stream=False)
    assert [o.status for o in outs] == ["ok", "ok"]
    assert loads == []
