"""The `bedrock` control plane over the wire: real boto3 clients on 127.0.0.1.

First a plain boto3 script (the tutorial's steps: a call, a cached prefix written once
then read, a batch job, the profile list), run as its own process against `loadgen
emulator` with only the three AWS_ENDPOINT_URL_* lines the command prints (S3 is moto's
server); then the
operations' shapes, typed errors and paging against an in-process emulator whose clock
the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import textwrap
import threading

import boto3
import pytest
from botocore.config import Config

from loadgen.catalog.models import catalog
from loadgen.emulator.batch import JobStore, MemoryStorage
from loadgen.emulator.batch_config import BatchConfig
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.control_plane import ControlPlane
from loadgen.emulator.model import EmulatorModel
from loadgen.emulator.server import serve

from emulator_fakes import HAIKU, US_HAIKU, FakeClock

SCRIPT = textwrap.dedent('''
    import json, sys, time
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    bedrock = boto3.client("bedrock", region_name="us-east-1")
    runtime = boto3.client("bedrock-runtime", region_name="us-east-1")
    MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

    r = runtime.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hi. Reply with about 5 tokens."}]}],
                         inferenceConfig={"maxTokens": 20})
    print("converse", r["stopReason"])

    # prompt caching: a long system prompt with a cache checkpoint, sent three times
    system = [{"text": "You are a careful assistant who answers in one short sentence. " * 400},
              {"cachePoint": {"type": "default"}}]
    for i in range(3):
        u = runtime.converse(modelId=MODEL, system=system, inferenceConfig={"maxTokens": 20},
                             messages=[{"role": "user", "content": [{"text": f"Question {i}?"}]}])["usage"]
        print("cache", u.get("cacheWriteInputTokens", 0), u.get("cacheReadInputTokens", 0))

    s3.create_bucket(Bucket="batch-demo")

    def submit(name, n):
        records = [{"recordId": f"CALL{i:07d}", "modelInput": {
            "messages": [{"role": "user", "content": [{"text": f"Summarize item {i}."}]}],
            "inferenceConfig": {"maxTokens": 64}}} for i in range(n)]
        body = "".join(json.dumps(x) + "\\n" for x in records)
        s3.put_object(Bucket="batch-demo", Key=f"input/{name}.jsonl", Body=body.encode())
        return bedrock.create_model_invocation_job(
            jobName=name, roleArn="arn:aws:iam::123456789012:role/BedrockBatch", modelId=MODEL,
            modelInvocationType="Converse",
            inputDataConfig={"s3InputDataConfig": {"s3Uri": f"s3://batch-demo/input/{name}.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://batch-demo/output/"}})["jobArn"]

    def wait(arn):
        while True:
            job = bedrock.get_model_invocation_job(jobIdentifier=arn)
            if job["status"] in ("Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"):
                return job
            time.sleep(0.2)

    ok, short = submit("hundred", 100), submit("ninetynine", 99)
    job = wait(ok)
    job_id = ok.split("/")[-1]
    out = s3.get_object(Bucket="batch-demo", Key=f"output/{job_id}/hundred.jsonl.out")["Body"].read()
    lines = [json.loads(x) for x in out.decode().splitlines()]
    manifest = json.loads(s3.get_object(Bucket="batch-demo", Key=f"output/{job_id}/manifest.json.out")["Body"].read())
    bad = wait(short)
    profiles = bedrock.list_inference_profiles(typeEquals="SYSTEM_DEFINED")["inferenceProfileSummaries"]
    print(json.dumps({
        "status": job["status"], "success": job["successRecordCount"],
        "ids": sorted(x["recordId"] for x in lines), "outputs": sum("modelOutput" in x for x in lines),
        "manifest": manifest, "short": [bad["status"], bad.get("message", "")],
        "profiles": {p["inferenceProfileId"]: [m["modelArn"] for m in p["models"]] for p in profiles},
    }))
''')


@pytest.fixture(scope="module")
def emulator_process():
    """`loadgen emulator` as a user starts it; yields the env its export lines set."""
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--port", "0", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(7)]
        assert lines[0].startswith("loadgen emulator listening on http://127.0.0.1:"), lines
        assert [ln.split()[0] for ln in lines[1:4]] == ["bedrock-runtime", "bedrock", "s3"]
        env = dict(re.findall(r"^export (AWS_ENDPOINT_URL_\w+)=(\S+)$", "".join(lines), re.M))
        assert set(env) == {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK", "AWS_ENDPOINT_URL_S3"}
        yield env
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow  # two processes (emulator + moto, and the script's boto3): about 6 s
def test_a_plain_boto3_script_caches_runs_a_batch_job_and_lists_profiles(emulator_process, tmp_path):
    script = tmp_path / "batch.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(emulator_process, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    first, last = r.stdout.splitlines()[0], json.loads(r.stdout.splitlines()[-1])
    assert first == "converse end_turn"
    # one cache write, then reads of the same prefix
    cache = [tuple(map(int, ln.split()[1:])) for ln in r.stdout.splitlines() if ln.startswith("cache ")]
    assert len(cache) == 3 and cache[0][0] > 4096 and cache[0][1] == 0
    assert cache[1] == cache[2] == (0, cache[0][0])
    assert last["status"] == "Completed" and last["success"] == 100
    assert last["ids"] == [f"CALL{i:07d}" for i in range(100)] and last["outputs"] == 100
    m = last["manifest"]
    assert (m["totalRecordCount"], m["processedRecordCount"], m["successRecordCount"], m["errorRecordCount"]) == \
        (100, 100, 100, 0)
    assert m["inputTokenCount"] > 0 and m["outputTokenCount"] > 0
    assert last["short"][0] == "Failed" and "minimum of 100" in last["short"][1]
    # every system-defined profile the catalog has from us-east-1, with its destinations
    expected = {pid for info in catalog().values() for pid in info.profiles_from("us-east-1")
                if pid.startswith(("us.", "global."))}
    assert set(last["profiles"]) == expected
    assert last["profiles"][US_HAIKU] == [f"arn:aws:bedrock:{r}::foundation-model/{HAIKU}"
                                          for r in ("us-east-1", "us-east-2", "us-west-2")]


# -- in-process: shapes, errors, paging --------------------------------------------


@contextlib.contextmanager
def control_plane(overrides=None):
    clock = FakeClock()
    cfg = EmulatorConfig.from_mapping({"latency": "fast"})
    storage = MemoryStorage()
    storage.create_bucket("bkt")
    store = JobStore(BatchConfig.load(timing="fast", overrides=overrides), cfg, clock=clock,
                     rng=random.Random(3), storage=storage, wall_epoch=1_800_000_000.0)
    model = EmulatorModel(cfg, clock=clock, rng=random.Random(1))
    loop = asyncio.new_event_loop()
    ready, url, stop = threading.Event(), {}, {}

    async def main():
        stop["e"] = asyncio.Event()
        async with serve(model, clock, control=ControlPlane(store, ticker=False)) as u:
            url["u"] = u
            ready.set()
            await stop["e"].wait()

    t = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    t.start()
    assert ready.wait(10)
    try:
        yield url["u"], clock, storage
    finally:
        loop.call_soon_threadsafe(stop["e"].set)
        t.join(10)


def client(url, region="us-east-1"):
    return boto3.client("bedrock", region_name=region, endpoint_url=url, aws_access_key_id="x",
                        aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))


def submit(c, name, model=US_HAIKU, **extra):
    return c.create_model_invocation_job(
        jobName=name, roleArn="arn:aws:iam::123456789012:role/R", modelId=model, modelInvocationType="Converse",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://bkt/in/x.jsonl"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": "s3://bkt/out"}}, **extra)["jobArn"]


def put_records(storage, n):
    storage.put("bkt", "in/x.jsonl", b"".join(json.dumps({"recordId": str(i), "modelInput": {
        "messages": [{"role": "user", "content": [{"text": "q"}]}]}}).encode() + b"\n" for i in range(n)))


def test_job_operations_have_botocores_shapes_and_typed_errors():
    with control_plane({"quotas": {"concurrent_jobs": 2}}) as (url, clock, storage):
        put_records(storage, 100)
        c = client(url)
        arn = submit(c, "one", clientRequestToken="abc")
        job_id = arn.rsplit("/", 1)[1]
        assert re.fullmatch(r"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/[a-z0-9]{12}", arn)
        j = c.get_model_invocation_job(jobIdentifier=arn)
        assert j["status"] == "Submitted" and j["jobName"] == "one" and j["clientRequestToken"] == "abc"
        assert j["inputDataConfig"] == {"s3InputDataConfig": {"s3Uri": "s3://bkt/in/x.jsonl"}}
        assert j["modelInvocationType"] == "Converse" and j["timeoutDurationInHours"] == 24
        assert j["submitTime"].year == 2027 and (j["jobExpirationTime"] - j["submitTime"]).total_seconds() == 86400
        submit(c, "two")
        with pytest.raises(c.exceptions.ServiceQuotaExceededException):
            submit(c, "three")
        with pytest.raises(c.exceptions.ConflictException):
            submit(c, "one")
        with pytest.raises(c.exceptions.ValidationException):
            c.get_model_invocation_job(jobIdentifier="NOT-AN-ID")
        with pytest.raises(c.exceptions.ResourceNotFoundException):
            c.get_model_invocation_job(jobIdentifier="aaaaaaaaaaaa")
        with pytest.raises(c.exceptions.ValidationException):
            submit(c, "bad", model="anthropic.unknown-v1:0")
        # the same job from another Region does not exist there
        with pytest.raises(client(url, "eu-west-1").exceptions.ResourceNotFoundException):
            client(url, "eu-west-1").get_model_invocation_job(jobIdentifier=job_id)

        c.stop_model_invocation_job(jobIdentifier=job_id)
        assert c.get_model_invocation_job(jobIdentifier=job_id)["status"] == "Stopping"
        clock.t = 100.0
        done = c.get_model_invocation_job(jobIdentifier=job_id)
        assert done["status"] == "Stopped" and "endTime" in done
        with pytest.raises(c.exceptions.ConflictException):
            c.stop_model_invocation_job(jobIdentifier=arn)
        assert c.list_model_invocation_jobs(statusEquals="Completed")["invocationJobSummaries"][0]["jobName"] == "two"
        assert [s["jobName"] for s in c.list_model_invocation_jobs(nameContains="on")["invocationJobSummaries"]] == ["one"]


def test_listings_page_with_max_results_and_next_token():
    with control_plane() as (url, clock, storage):
        put_records(storage, 100)
        c = client(url)
        for i in range(5):
            submit(c, f"job{i}")
        first = c.list_model_invocation_jobs(maxResults=2)
        assert [s["jobName"] for s in first["invocationJobSummaries"]] == ["job4", "job3"] and first["nextToken"]
        pages = list(c.get_paginator("list_model_invocation_jobs").paginate(
            sortOrder="Ascending", PaginationConfig={"PageSize": 2}))
        assert [len(p["invocationJobSummaries"]) for p in pages] == [2, 2, 1]
        assert [s["jobName"] for p in pages for s in p["invocationJobSummaries"]] == [f"job{i}" for i in range(5)]
        with pytest.raises(c.exceptions.ValidationException):
            c.list_model_invocation_jobs(nextToken="garbage!")

        everything = c.list_inference_profiles()["inferenceProfileSummaries"]
        pages = list(c.get_paginator("list_inference_profiles").paginate(
            typeEquals="SYSTEM_DEFINED", PaginationConfig={"PageSize": 3}))
        assert len(pages) > 1 and [p for pg in pages for p in pg["inferenceProfileSummaries"]] == everything
        assert c.list_inference_profiles(typeEquals="APPLICATION")["inferenceProfileSummaries"] == []


def test_profiles_and_models_come_from_the_catalog_in_the_callers_region():
    with control_plane() as (url, clock, storage):
        eu = client(url, "eu-west-1")
        ids = {p["inferenceProfileId"] for p in eu.list_inference_profiles()["inferenceProfileSummaries"]}
        assert "eu." + HAIKU in ids and US_HAIKU not in ids and "global." + HAIKU in ids
        p = eu.get_inference_profile(inferenceProfileIdentifier="global." + HAIKU)
        assert p["inferenceProfileArn"] == f"arn:aws:bedrock:eu-west-1:123456789012:inference-profile/global.{HAIKU}"
        assert p["models"] == [{"modelArn": f"arn:aws:bedrock:::foundation-model/{HAIKU}"}]
        assert p["type"] == "SYSTEM_DEFINED" and p["status"] == "ACTIVE"
        # by ARN (botocore sends it %-encoded, "/" included)
        assert eu.get_inference_profile(inferenceProfileIdentifier=p["inferenceProfileArn"])["inferenceProfileId"] == \
            "global." + HAIKU
        with pytest.raises(eu.exceptions.ResourceNotFoundException):
            eu.get_inference_profile(inferenceProfileIdentifier=US_HAIKU)   # not callable from eu-west-1

        c = client(url)
        models = c.list_foundation_models()["modelSummaries"]
        assert {m["modelId"] for m in models} == set(catalog())
        haiku = next(m for m in models if m["modelId"] == HAIKU)
        assert haiku["modelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}"
        assert haiku["providerName"] == "Anthropic" and haiku["inferenceTypesSupported"] == ["ON_DEMAND"]
        names = {m["providerName"] for m in c.list_foundation_models(byProvider="Amazon")["modelSummaries"]}
        assert names == {"Amazon"}
        assert c.get_foundation_model(modelIdentifier=haiku["modelArn"])["modelDetails"] == haiku
        with pytest.raises(c.exceptions.ResourceNotFoundException):
            c.get_foundation_model(modelIdentifier=US_HAIKU)
