"""The caller's Region comes from the request's SigV4 credential scope (Bedrock's endpoint
is per Region), so clients created with different region_name against one emulator are
answered as from their own Region; `--region` only covers unsigned requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading

import aiohttp
import boto3
import botocore.exceptions
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config

from loadgen.catalog import profiles
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import SERVED_REGION_HEADER, caller_region, serve

from emulator_fakes import HAIKU, US_HAIKU, FakeClock  # noqa: E402

EU_HAIKU = "eu." + HAIKU
ASK = {"messages": [{"role": "user", "content": [{"text": "Hi. Reply with about 5 tokens."}]}],
       "inferenceConfig": {"maxTokens": 64}}


@contextlib.contextmanager
def emulator_thread(region="us-east-1"):
    """One emulator (configured Region `region`) on 127.0.0.1 in a background loop."""
    clock = FakeClock()
    model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock,
                          rng=random.Random(1), region=region)
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), None
    url = {}

    async def main():
        nonlocal stop
        stop = asyncio.Event()
        async with serve(model, clock) as u:
            url["u"] = u
            ready.set()
            await stop.wait()

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield url["u"], model
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(10)


def boto(url, region):
    return boto3.client("bedrock-runtime", region_name=region, endpoint_url=url,
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"total_max_attempts": 1}))


def served(resp):
    return resp["ResponseMetadata"]["HTTPHeaders"][SERVED_REGION_HEADER]


def test_boto3_clients_in_different_regions_are_answered_from_their_own_region():
    with emulator_thread() as (url, model):
        eu, us, ca, usw2 = (boto(url, r) for r in ("eu-west-1", "us-east-1", "ca-central-1", "us-west-2"))
        # a us. profile called from eu-west-1: Bedrock's 400 (danny-avila/LibreChat#5001)
        with pytest.raises(botocore.exceptions.ClientError) as e:
            eu.converse(modelId=US_HAIKU, **ASK)
        assert e.value.response["Error"]["Code"] == "ValidationException"
        assert e.value.response["Error"]["Message"].startswith("The provided model identifier is invalid.")
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        # ... and from a US Region it is served in the US; eu. from eu-west-1 in eu-west-1
        assert served(us.converse(modelId=US_HAIKU, **ASK)) == "us-east-1"
        assert served(eu.converse(modelId=EU_HAIKU, **ASK)) == "eu-west-1"
        with pytest.raises(botocore.exceptions.ClientError):
            us.converse(modelId=EU_HAIKU, **ASK)
        # ca-central-1 may call us. (AWS Canada CRIS blog): served in a US Region, not Canada
        assert served(ca.converse(modelId=US_HAIKU, **ASK)) in profiles.destination_regions(US_HAIKU, "us-east-1")
        # the bare id is on demand in eu-west-1 but not in us-west-2 (Haiku 4.5's card)
        assert served(eu.converse(modelId=HAIKU, **ASK)) == "eu-west-1"
        with pytest.raises(botocore.exceptions.ClientError) as e:
            usw2.converse(modelId=HAIKU, **ASK)
        assert "with on-demand throughput isn\u2019t supported" in e.value.response["Error"]["Message"]
        # quotas are per caller Region: eu-west-1's bare-id calls did not count in us-east-1
        assert model.quota_used(HAIKU) == 0


def test_aiobotocore_streams_from_the_signed_region_and_unsigned_requests_use_the_fallback():
    async def go():
        clock = FakeClock()
        model = EmulatorModel(EmulatorConfig.from_mapping({"latency": "fast"}), clock=clock,
                              rng=random.Random(1), region="eu-west-1")
        async with serve(model, clock) as url:
            async with get_session().create_client(
                    "bedrock-runtime", region_name="us-east-2", endpoint_url=url,
                    aws_access_key_id="x", aws_secret_access_key="x",
                    config=AioConfig(retries={"total_max_attempts": 1})) as c:
                r = await c.converse_stream(modelId=US_HAIKU, **ASK)
                assert served(r) == "us-east-2"
                async for _ in r["stream"]:
                    pass
            # no Authorization header: the emulator's own Region (--region), eu-west-1
            async with aiohttp.ClientSession() as s:
                async with s.post(f"{url}/model/{US_HAIKU}/converse", data=json.dumps(ASK)) as resp:
                    assert resp.status == 400
                    assert resp.headers[SERVED_REGION_HEADER] == "eu-west-1"
                async with s.post(f"{url}/model/{EU_HAIKU}/converse", data=json.dumps(ASK)) as resp:
                    assert resp.status == 200
    asyncio.run(go())


@pytest.mark.parametrize("header, want", [
    ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/eu-west-1/bedrock/aws4_request, "
     "SignedHeaders=host;x-amz-date, Signature=abc", "eu-west-1"),
    ("AWS4-HMAC-SHA256 Credential=x/20261202/us-gov-west-1/bedrock/aws4_request", "us-gov-west-1"),
    (None, None), ("Bearer token", None), ("", None),
])
def test_caller_region_reads_the_credential_scope(header, want):
    assert caller_region(header) == want


@pytest.mark.parametrize("source, prefix, ok", [
    ("us-east-1", "us", True), ("ca-central-1", "us", True), ("eu-west-1", "us", False),
    ("eu-west-3", "eu", True), ("us-east-1", "eu", False), ("ap-northeast-1", "jp", True),
    ("ap-northeast-1", "au", False), ("us-gov-west-1", "us-gov", True), ("us-east-1", "us-gov", False),
])
def test_geo_sources_are_data(source, prefix, ok):
    assert profiles.callable_from(f"{prefix}.{HAIKU}", source) is ok
    assert profiles.callable_from(f"global.{HAIKU}", source)
    if ok:  # a source outside the destinations (ca-central-1) is never a destination itself
        dest = profiles.destination_regions(f"{prefix}.{HAIKU}", source)
        assert (source in dest) == (source == dest[0])
