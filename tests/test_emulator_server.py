"""The emulator over HTTP with real clients: aiobotocore (async) and boto3 (threads)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading

import boto3
import botocore.exceptions
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config

from loadgen.api.inprocess import InProcessTransport
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import SERVED_REGION_HEADER, serve
from loadgen.engine.clock import RealClock, WarpClock
from loadgen.engine.transport import BedrockTransport

from emulator_fakes import HAIKU, US_HAIKU, US_SONNET37, FakeClock  # noqa: E402


@contextlib.asynccontextmanager
async def emulator(table=None, seed=1, clock=None):
    clock = clock or FakeClock()
    cfg = EmulatorConfig.from_mapping({"latency": "fast", **(table or {})})
    model = EmulatorModel(cfg, clock=clock, rng=random.Random(seed))
    async with serve(model, clock) as url:
        async with get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=url,
            aws_access_key_id="x", aws_secret_access_key="x",
            config=AioConfig(retries={"total_max_attempts": 1}),
        ) as client:
            yield client, clock, model


def run(coro):
    return asyncio.run(coro)


def params(prefix_tokens=5000, ttl=None, out=20, model=US_HAIKU, question="What now?", **extra):
    cp = {"type": "default"}
    if ttl:
        cp["ttl"] = ttl
    p = {"modelId": model,
         "system": [{"text": "p" * 4 * prefix_tokens}, {"cachePoint": cp}] if prefix_tokens else [],
         "messages": [{"role": "user", "content": [{"text": f"{question} Reply with about {out} tokens."}]}],
         "inferenceConfig": {"maxTokens": 512}}
    p.update(extra)
    return p


def cache(resp):
    u = resp["usage"]
    return u["cacheReadInputTokens"], u["cacheWriteInputTokens"]


def test_converse_parses_every_usage_field_and_headers():
    async def go():
        async with emulator() as (c, clock, _):
            r = await c.converse(**params(ttl="1h", out=30))
            assert r["output"]["message"]["role"] == "assistant"
            assert len(r["output"]["message"]["content"][0]["text"]) == 120
            assert r["stopReason"] == "end_turn"
            q = 8  # "What now? Reply with about 30 tokens." = 37 chars
            assert r["usage"] == {"inputTokens": 10, "outputTokens": 30, "totalTokens": 5040,
                                  "cacheReadInputTokens": 0, "cacheWriteInputTokens": 5000,
                                  "cacheDetails": [{"ttl": "1h", "inputTokens": 5000}]}
            assert isinstance(r["metrics"]["latencyMs"], int)
            h = r["ResponseMetadata"]["HTTPHeaders"]
            assert h[SERVED_REGION_HEADER] == "us-east-1"
            assert r["ResponseMetadata"]["RequestId"]
    run(go())


def test_converse_stream_parses_events_and_metadata():
    async def go():
        async with emulator() as (c, clock, _):
            await c.converse(**params())
            r = await c.converse_stream(**params(out=50))
            assert r["ResponseMetadata"]["HTTPHeaders"][SERVED_REGION_HEADER] == "us-east-1"
            events = [e async for e in r["stream"]]
            kinds = [next(iter(e)) for e in events]
            assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
            text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
            assert len(text) == 200
            meta = events[-1]["metadata"]
            assert meta["usage"]["cacheReadInputTokens"] == 5000 and meta["usage"]["outputTokens"] == 50
            assert "latencyMs" in meta["metrics"]
            assert events[-2]["messageStop"]["stopReason"] == "end_turn"
    run(go())


def test_cache_write_read_then_expiry_after_ttl():
    async def go():
        async with emulator() as (c, clock, _):
            assert cache(await c.converse(**params())) == (0, 5000)
            clock.t = 60
            assert cache(await c.converse(**params())) == (5000, 0)
            clock.t = 60 + 301                         # 5 min after the last hit
            assert cache(await c.converse(**params())) == (0, 5000)
    run(go())


def test_1h_survives_a_6_minute_gap_that_kills_5m():
    async def go():
        async with emulator() as (c, clock, _):
            p5 = params(question="five")
            p5["system"][0]["text"] = "f" * 4 * 5000
            p1 = params(ttl="1h")
            await c.converse(**p5)
            await c.converse(**p1)
            clock.t = 6 * 60
            assert cache(await c.converse(**p1)) == (5000, 0)
            assert cache(await c.converse(**p5)) == (0, 5000)
            clock.t = 6 * 60 + 3601
            assert cache(await c.converse(**p1)) == (0, 5000)
    run(go())


def test_refresh_on_hit_keeps_5m_alive_across_4_minute_gaps():
    async def go():
        async with emulator() as (c, clock, _):
            assert cache(await c.converse(**params())) == (0, 5000)
            for i in range(1, 16):                     # an hour of 4-minute gaps
                clock.t = i * 240
                assert cache(await c.converse(**params())) == (5000, 0)
    run(go())


def test_below_minimum_prefix_gives_zeros():
    async def go():
        async with emulator() as (c, clock, _):
            for _ in range(2):                         # Haiku 4.5 needs 4096 tokens
                r = await c.converse(**params(prefix_tokens=4000))
                assert cache(r) == (0, 0) and r["usage"]["inputTokens"] == 4010
                assert "cacheDetails" not in r["usage"]
    run(go())


def test_volatile_content_above_checkpoint_writes_every_call():
    async def go():
        async with emulator() as (c, clock, _):
            for i in range(3):
                p = params()
                p["system"][0]["text"] = f"now={i:05d} " + "p" * (4 * 5000 - 10)
                assert cache(await c.converse(**p)) == (0, 5000)
    run(go())


def test_more_than_4_checkpoints_and_unsupported_ttl_are_validation_errors():
    async def go():
        async with emulator() as (c, clock, _):
            p = params()
            p["messages"][0]["content"] += [{"text": "x"}, {"cachePoint": {"type": "default"}}] * 4
            with pytest.raises(botocore.exceptions.ClientError) as e:
                await c.converse(**p)
            assert e.value.response["Error"]["Code"] == "ValidationException"
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert e.value.response["ResponseMetadata"]["HTTPHeaders"][SERVED_REGION_HEADER] == "us-east-1"
            assert e.value.response["ResponseMetadata"]["RequestId"]
            with pytest.raises(botocore.exceptions.ClientError) as e:
                await c.converse(**params(model=US_SONNET37, ttl="1h"))
            assert e.value.response["Error"]["Code"] == "ValidationException"
            assert "not supported" in e.value.response["Error"]["Message"]
    run(go())


def test_throttling_at_rpm_and_tpm():
    async def go():
        async with emulator({"quotas": {"rpm": 3}}) as (c, clock, _):
            for _ in range(3):
                await c.converse(**params(prefix_tokens=0))
            with pytest.raises(c.exceptions.ThrottlingException) as e:
                await c.converse(**params(prefix_tokens=0))
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            clock.t = 61
            await c.converse(**params(prefix_tokens=0))
        async with emulator({"quotas": {"tpm": 12_000, "geo": {"tpm": 12_000}}}) as (c, clock, _):
            await c.converse(**params(out=10))         # charge: 10 + 5000 + 10 x 5 = 5060
            await c.converse(**params(out=10))         # reads: 10 + 50 = 60; reserve then 5522
            with pytest.raises(botocore.exceptions.ClientError) as e:
                await c.converse(**params(out=10, inferenceConfig={"maxTokens": 6000}))
            assert e.value.response["Error"]["Code"] == "ThrottlingException"
            # in a stream: an HTTP 429 before the stream starts, raised at the call
            with pytest.raises(c.exceptions.ThrottlingException) as e:
                await c.converse_stream(**params(out=10, inferenceConfig={"maxTokens": 6000}))
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
            clock.t = 61
            await c.converse(**params(out=10, inferenceConfig={"maxTokens": 6000}))
    run(go())


def test_stream_throttle_is_http_429_that_botocore_retries():
    """Bedrock's streaming clients see throttles as HTTP 429s their SDK retried (public
    reports, docs/emulator.md); the in-stream event stays a fault option."""
    async def go():
        table = {"quotas": {"tpm": 1000, "geo": {"tpm": 1000}}}
        clock = FakeClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast", **table}),
                              clock=clock, rng=random.Random(1))
        async with serve(model, clock) as url:
            async with get_session().create_client(
                    "bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                    aws_access_key_id="x", aws_secret_access_key="x",
                    config=AioConfig(retries={"mode": "standard", "total_max_attempts": 2})) as c:
                with pytest.raises(c.exceptions.ThrottlingException) as e:
                    await c.converse_stream(**params(prefix_tokens=0, inferenceConfig={"maxTokens": 2000}))
                meta = e.value.response["ResponseMetadata"]
                assert meta["HTTPStatusCode"] == 429
                assert meta["RetryAttempts"] == 1   # botocore retried it
        async with emulator({**table, "stream_errors_in_band": True}) as (c, clock, _):
            r = await c.converse_stream(**params(prefix_tokens=0, inferenceConfig={"maxTokens": 2000}))
            assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
            with pytest.raises(botocore.exceptions.EventStreamError) as e:
                async for _ in r["stream"]:
                    pass
            assert e.value.response["Error"]["Code"] == "throttlingException"
    run(go())


def test_tokens_per_day_quota_throttles_until_the_day_has_passed():
    """[emulator.quotas] tpd: Bedrock's "Model invocation max tokens per day" quota, off by
    default; over it a 429 with Bedrock's per-day text and x-loadgen-quota: tpd REGION."""
    async def go():
        async with emulator() as (c, clock, _):   # off by default: a day's worth goes through
            for _ in range(3):
                await c.converse(**params(prefix_tokens=1000, inferenceConfig={"maxTokens": 5000}))
        async with emulator({"quotas": {"tpd": 12_000}}) as (c, clock, _):
            # each: 10 + 1000 input, reserves 6010, settles at 1010 + 20 x 5 = 1110
            for _ in range(3):
                await c.converse(**params(prefix_tokens=1000, inferenceConfig={"maxTokens": 5000}))
                clock.t += 61   # a new minute each time: the TPM quota never binds
            for call in (c.converse, c.converse_stream):
                with pytest.raises(c.exceptions.ThrottlingException) as e:
                    await call(**params(prefix_tokens=1000, inferenceConfig={"maxTokens": 9000}))
                assert e.value.response["Error"]["Message"] == \
                    "Too many tokens per day, please wait before trying again."
                assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["x-loadgen-quota"] == "tpd us-east-1"
            clock.t = 86_400 + 200   # all three charges have left the day's window
            await c.converse(**params(prefix_tokens=1000, inferenceConfig={"maxTokens": 9000}))
    run(go())


def test_mid_stream_exception_is_botocore_event_stream_error():
    async def go():
        async with emulator({"faults": {"mid_stream_rate": 1.0}}) as (c, clock, _):
            r = await c.converse_stream(**params(out=100))
            got = []
            with pytest.raises(botocore.exceptions.EventStreamError) as e:
                async for ev in r["stream"]:
                    got.append(next(iter(ev)))
            assert e.value.response["Error"]["Code"] == "modelStreamErrorException"
            assert got[0] == "messageStart" and "contentBlockDelta" in got and "metadata" not in got
    run(go())


def test_injected_errors_have_bedrock_status_and_code():
    async def go():
        async with emulator({"faults": {"error_rates": {"ServiceUnavailableException": 1.0}}}) as (c, clock, _):
            with pytest.raises(c.exceptions.ServiceUnavailableException) as e:
                await c.converse(**params())
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        async with emulator({"faults": {"error_rates": {"ModelNotReadyException": 1.0}}}) as (c, clock, _):
            with pytest.raises(c.exceptions.ModelNotReadyException):
                await c.converse(**params())
            # ModelNotReady has no stream event: it stays an HTTP error
            with pytest.raises(c.exceptions.ModelNotReadyException):
                await c.converse_stream(**params())
    run(go())


def test_connection_reset_surfaces_as_connection_error():
    async def go():
        async with emulator({"faults": {"connection_reset_rate": 1.0}}) as (c, clock, _):
            with pytest.raises((botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
                await c.converse(**params())
            r = await c.converse_stream(**params(out=100))
            with pytest.raises(Exception) as e:
                async for _ in r["stream"]:
                    pass
            assert not isinstance(e.value, botocore.exceptions.EventStreamError)
    run(go())


def test_faults_reproducible_by_seed_over_http():
    table = {"faults": {"error_rates": {"InternalServerException": 0.3}}}

    async def codes(seed):
        out = []
        async with emulator(table, seed=seed) as (c, clock, _):
            for _ in range(30):
                try:
                    await c.converse(**params(prefix_tokens=0))
                    out.append("ok")
                except botocore.exceptions.ClientError as e:
                    out.append(e.response["Error"]["Code"])
        return out

    a, b = run(codes(5)), run(codes(5))
    assert a == b and "InternalServerException" in a and "ok" in a


def test_arn_and_url_encoded_ids_and_unknown_model():
    async def go():
        async with emulator() as (c, clock, _):
            arn = f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{US_HAIKU}"
            r = await c.converse(**params(model=arn))
            assert r["usage"]["cacheWriteInputTokens"] == 5000
            r = await c.converse(**params(model="global." + HAIKU))
            assert r["ResponseMetadata"]["HTTPHeaders"][SERVED_REGION_HEADER] == "us-east-1"
            with pytest.raises(c.exceptions.ValidationException) as e:
                await c.converse(**params(model="anthropic.claude-nope-v9:0"))
            assert "model identifier is invalid" in e.value.response["Error"]["Message"]
    run(go())


def test_boto3_reference_run_one_write_then_reads():
    """DESIGN.md's reference run with an unmodified boto3 client: one write, then reads."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def server():
        clock = FakeClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(0))
        box["stop"] = asyncio.Event()
        async with serve(model, clock) as url:
            box["url"] = url
            ready.set()
            await box["stop"].wait()

    t = threading.Thread(target=loop.run_until_complete, args=(server(),), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=box["url"],
                              aws_access_key_id="x", aws_secret_access_key="x",
                              config=Config(retries={"total_max_attempts": 1}))
        usages = []
        for q in ["What is 1+1?", "Name a color.", "Say hi.", "Count to 3."]:
            r = client.converse(**params(prefix_tokens=5024, question=q))
            usages.append(r["usage"])
        assert [(u["cacheReadInputTokens"], u["cacheWriteInputTokens"]) for u in usages] == \
            [(0, 5024), (5024, 0), (5024, 0), (5024, 0)]
        r = client.converse_stream(**params(prefix_tokens=5024))
        meta = [e for e in r["stream"] if "metadata" in e][0]["metadata"]
        assert meta["usage"]["cacheReadInputTokens"] == 5024
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        t.join(10)


def test_warp_clock_paces_realistic_latency_in_scenario_time():
    async def go():
        # scale 10 and a warm-up call: the first call's one-off client set-up (and a busy
        # machine) would otherwise be magnified into seconds of scenario time
        clock = WarpClock(scale=10.0)
        async with emulator({"latency": "realistic"}, clock=clock) as (c, _, _m):
            await c.converse(**params(prefix_tokens=0, out=1))
            t0 = clock.now()
            r = await c.converse_stream(**params(prefix_tokens=0, out=250))
            first = None
            async for ev in r["stream"]:
                if first is None and "contentBlockDelta" in ev:
                    first = clock.now() - t0
            total = clock.now() - t0
            assert 0.2 < first < 3.0          # ttft ~0.6 s scenario time (plus magnified overhead)
            assert 1.5 < total < 6.0          # 250 tokens at ~125 tokens/s
    run(go())


def test_body_past_the_size_limit_gets_bedrocks_error_shape(monkeypatch):
    """Not aiohttp's bare 413 page: a JSON ValidationException botocore parses (the limit
    itself is an assumption: Bedrock's is unsourced)."""
    monkeypatch.setattr("loadgen.emulator.server.MAX_BODY_BYTES", 200_000)

    async def go():
        async with emulator() as (c, clock, _):
            await c.converse(**params(prefix_tokens=10_000))          # 40 KB: served
            with pytest.raises(c.exceptions.ValidationException) as e:
                await c.converse(**params(prefix_tokens=100_000))     # 400 KB: refused
            r = e.value.response
            assert r["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith("ValidationException")
            assert "200000 bytes" in r["Error"]["Message"]
    run(go())


def test_validation_texts_follow_bedrocks_wording():
    async def go():
        async with emulator() as (c, clock, _):
            p = params(prefix_tokens=0)
            p["messages"].append({"role": "user", "content": [{"text": "again"}]})
            with pytest.raises(c.exceptions.ValidationException) as e:
                await c.converse(**p)
            # langchain-ai/langchain-aws#130 (Converse)
            assert e.value.response["Error"]["Message"] == (
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again.")
            # six checkpoints: counted over the whole request, Anthropic's text (Bedrock's unsourced)
            p = params()
            p["messages"][0]["content"] += [{"text": "x"}, {"cachePoint": {"type": "default"}}] * 5
            with pytest.raises(c.exceptions.ValidationException) as e:
                await c.converse(**p)
            assert e.value.response["Error"]["Message"] == (
                "The model returned the following errors: A maximum of 4 blocks with cache_control "
                "may be provided. Found 6.")
    run(go())


TOOLS = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}},
                   {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.mark.parametrize("choice, name", [({"tool": {"name": "get_time"}}, "get_time"), ({"any": {}}, "get_weather")])
def test_forced_tool_choice_returns_a_tool_use_block(choice, name):
    """botocore's Converse output shape: a toolUse content block, stopReason tool_use."""
    async def go():
        async with emulator() as (c, clock, _):
            p = params(prefix_tokens=0, toolConfig={**TOOLS, "toolChoice": choice})
            r = await c.converse(**p)
            assert r["stopReason"] == "tool_use"
            (block,) = r["output"]["message"]["content"]
            assert block["toolUse"]["name"] == name and block["toolUse"]["input"] == {}
            assert block["toolUse"]["toolUseId"]
            assert r["usage"]["outputTokens"] == 1
            s = await c.converse_stream(**p)
            events = [ev async for ev in s["stream"]]
            kinds = [next(iter(ev)) for ev in events]
            assert kinds == ["messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
                             "messageStop", "metadata"]
            assert events[1]["contentBlockStart"]["start"]["toolUse"]["name"] == name
            assert events[2]["contentBlockDelta"]["delta"]["toolUse"]["input"] == "{}"
            assert events[4]["messageStop"]["stopReason"] == "tool_use"
            # auto: text as before
            r = await c.converse(**params(prefix_tokens=0, toolConfig={**TOOLS, "toolChoice": {"auto": {}}}))
            assert r["stopReason"] == "end_turn" and "text" in r["output"]["message"]["content"][0]
            with pytest.raises(c.exceptions.ValidationException):
                await c.converse(**params(prefix_tokens=0,
                                          toolConfig={**TOOLS, "toolChoice": {"tool": {"name": "nope"}}}))
    run(go())


def test_forced_tool_call_outcome_agrees_between_http_and_in_process():
    p = params(prefix_tokens=0, toolConfig={**TOOLS, "toolChoice": {"any": {}}})

    async def go():
        seen = []
        async with emulator() as (c, clock, _):
            for stream in (False, True):
                o = await BedrockTransport(c, RealClock()).call(dict(p), stream=stream, timeout=60)
                seen.append(("http", stream, o.status, o.stop_reason, o.delivered_tokens,
                             o.first_token is not None))
        clock = FakeClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock, rng=random.Random(1))
        t = InProcessTransport(model, clock)
        for stream in (False, True):
            o = await t.call(dict(p), stream=stream, timeout=60)
            seen.append(("sim", stream, o.status, o.stop_reason, o.delivered_tokens, o.first_token is not None))
        return seen

    seen = run(go())
    assert [s[1:] for s in seen[:2]] == [s[1:] for s in seen[2:]]
    assert seen[3][2:] == ("ok", "tool_use", 1, True)


def test_converse_json_is_the_bytes_json_dumps_gives():
    """The server writes a Converse body without building its dict (server.converse_json):
    byte for byte what json.dumps of Plan.response_body gives, for text replies with and
    without cache details and a service tier, and for a forced tool call."""
    import json

    from loadgen.emulator.plan import Plan, Usage
    from loadgen.emulator.server import converse_json

    base = Plan(request_id="r", model_id=US_HAIKU, base_id=HAIKU, stream=False, source_region="us-east-1",
                served_region="us-east-2", start=0.0, usage=Usage(12, 34, 5000, 0), text='He said "hi"\n\u00e9\u2019',
                stop_reason="end_turn", ttft_s=0.25, tokens_per_s=0.0, duration_s=1.2345, chunk_tokens=4)
    plans = [base,
             base._replace(usage=Usage(1, 2, 0, 6000, (("1h", 4000), ("5m", 2000))), stop_reason="max_tokens"),
             base._replace(service_tier="flex", text=""),
             base._replace(text="long \u00e9 " * 1000),   # past the cached-text limit
             base._replace(tool_use=("tooluse_1", "lookup"), stop_reason="tool_use")]
    for plan in plans:
        assert converse_json(plan) == json.dumps(plan.response_body(), separators=(",", ":")).encode()
