"""The batch job model (loadgen/emulator/batch.py) in scenario time: a clock the test
moves, storage in memory. Lifecycle, quotas (emulator.toml [batch]), outputs as Bedrock
writes them, Stop, Expired and PartiallyCompleted."""

from __future__ import annotations

import json
import random

import pytest

from loadgen.emulator.batch import ControlError, JobStore, MemoryStorage
from loadgen.emulator.batch_config import BatchConfig
from loadgen.emulator.batch_requests import JobRequest, RequestInvalid, job_wire
from loadgen.emulator.config import EmulatorConfig

from emulator_fakes import HAIKU, US_HAIKU, FakeClock

ROLE = "arn:aws:iam::123456789012:role/BatchRole"


def converse_record(i: int, **extra) -> dict:
    return {"recordId": f"R{i:05d}", "modelInput": {
        "messages": [{"role": "user", "content": [{"text": f"Q{i}. Reply with about 10 tokens."}]}],
        "inferenceConfig": {"maxTokens": 50}, **extra}}


def jsonl(records) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def make(timing="realistic", overrides=None, n=100, records=None):
    clock = FakeClock()
    storage = MemoryStorage()
    storage.create_bucket("bkt")
    storage.put("bkt", "in/data.jsonl", jsonl(records if records is not None else [converse_record(i) for i in range(n)]))
    store = JobStore(BatchConfig.load(timing=timing, overrides=overrides), EmulatorConfig.defaults(),
                     clock=clock, rng=random.Random(7), storage=storage, wall_epoch=1_800_000_000.0)
    return clock, storage, store


def request(name="job1", model=US_HAIKU, src="s3://bkt/in/data.jsonl", dst="s3://bkt/out/", **extra) -> JobRequest:
    return JobRequest.parse({"jobName": name, "roleArn": ROLE, "modelId": model,
                             "inputDataConfig": {"s3InputDataConfig": {"s3Uri": src}},
                             "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": dst}},
                             "modelInvocationType": "Converse", **extra})


def test_lifecycle_follows_the_timing_model_in_scenario_time():
    clock, storage, store = make()
    tm = store.config.timing
    job = store.create(request(), "us-east-1")
    assert job.status == "Submitted" and len(job.job_id) == 12 and job.job_id.isalnum()
    assert store.next_event() == tm.submitted_s   # a virtual-time driver sleeps until then
    assert job.arn == f"arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/{job.job_id}"
    seen = []
    t_end = tm.submitted_s + tm.validation_s + tm.queue_wait_s + 100 * 60 / tm.records_per_minute
    for t in (0.0, tm.submitted_s, tm.submitted_s + tm.validation_s,
              tm.submitted_s + tm.validation_s + tm.queue_wait_s, t_end - 1, t_end):
        clock.t = t
        seen.append(store.get(job.job_id, "us-east-1").status)
    assert seen == ["Submitted", "Validating", "Scheduled", "InProgress", "InProgress", "Completed"]
    assert job.end_t == pytest.approx(t_end)
    assert store.next_event() is None
    # "when would 50,000 records finish" is this arithmetic: 100 records at 500/min = 12 s
    assert 100 * 60 / tm.records_per_minute == pytest.approx(12.0)


def test_outputs_are_written_as_bedrock_writes_them():
    clock, storage, store = make(timing="fast")
    job = store.create(request(), "us-east-1")
    clock.t = 100.0
    store.advance()
    assert job.status == "Completed"
    lines = [json.loads(x) for x in storage.get("bkt", f"out/{job.job_id}/data.jsonl.out").splitlines()]
    assert [x["recordId"] for x in lines] == [f"R{i:05d}" for i in range(100)]
    first = lines[0]
    assert first["modelInput"] == converse_record(0)["modelInput"]
    out = first["modelOutput"]
    assert out["stopReason"] == "end_turn" and out["usage"]["outputTokens"] == 10
    assert out["output"]["message"]["content"][0]["text"]
    manifest = json.loads(storage.get("bkt", f"out/{job.job_id}/manifest.json.out"))
    assert manifest == {"totalRecordCount": 100, "processedRecordCount": 100, "successRecordCount": 100,
                        "errorRecordCount": 0, "inputTokenCount": sum(x["modelOutput"]["usage"]["inputTokens"]
                                                                      for x in lines),
                        "outputTokenCount": 1000}
    wire = job_wire(job, store.iso)
    assert wire["status"] == "Completed" and wire["successRecordCount"] == 100
    assert wire["submitTime"].startswith("2027-01-15T08:00:00") and wire["endTime"].endswith("Z")


def test_invoke_model_jobs_read_and_write_anthropic_messages_bodies():
    rec = {"recordId": "a1", "modelInput": {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 40,
        "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hello. Reply with about 7 tokens."}]}}
    bad = {"recordId": "a2", "modelInput": {"anthropic_version": "bedrock-2023-05-31",
                                            "messages": [{"role": "user", "content": "hi"}]}}
    clock, storage, store = make(timing="fast", records=[rec] * 99 + [bad])
    job = store.create(JobRequest.parse({**request().wire, "jobName": "inv", "roleArn": ROLE, "modelId": HAIKU}),
                       "us-east-1")
    clock.t = 100.0
    store.advance()
    assert job.status == "Completed" and job.req.invocation_type == "InvokeModel"
    lines = [json.loads(x) for x in storage.get("bkt", f"out/{job.job_id}/data.jsonl.out").splitlines()]
    out = lines[0]["modelOutput"]
    assert out["type"] == "message" and out["role"] == "assistant" and out["stop_reason"] == "end_turn"
    assert out["content"][0]["type"] == "text" and out["usage"]["output_tokens"] == 7
    assert lines[-1]["error"] == {"errorCode": 400, "errorMessage": "max_tokens: Field required"}
    assert job.counts()["errorRecordCount"] == 1


def test_a_job_below_the_minimum_record_count_fails_in_validating():
    clock, storage, store = make(n=99)
    tm = store.config.timing
    job = store.create(request(), "us-east-1")   # accepted: the check is Validating's
    clock.t = tm.submitted_s + tm.validation_s
    store.advance()
    assert job.status == "Failed" and "fewer than the minimum of 100" in job.message
    assert job.end_t == pytest.approx(tm.submitted_s + tm.validation_s)
    assert storage.list_objects("bkt", "out/") == []


@pytest.mark.parametrize("records, src, dst, words", [
    ([converse_record(i) for i in range(100)], "s3://nosuch/in/data.jsonl", "s3://bkt/out/", "bucket nosuch"),
    ([converse_record(i) for i in range(100)], "s3://bkt/in/data.jsonl", "s3://gone/out/", "bucket gone"),
    ([converse_record(i) for i in range(100)], "s3://bkt/other/", "s3://bkt/out/", "No .jsonl input"),
    ([converse_record(i) for i in range(50)] + ["not json"] + [converse_record(i) for i in range(50)],
     "s3://bkt/in/data.jsonl", "s3://bkt/out/", "Line 51"),
])
def test_input_problems_fail_the_job_with_a_message(records, src, dst, words):
    clock, storage, store = make(timing="fast")
    if "not json" in records:
        storage.put("bkt", "in/data.jsonl", b"\n".join(r.encode() if isinstance(r, str) else json.dumps(r).encode()
                                                     for r in records))
    else:
        storage.put("bkt", "in/data.jsonl", jsonl(records))
    job = store.create(request(src=src, dst=dst), "us-east-1")
    clock.t = 10.0
    store.advance()
    assert job.status == "Failed" and words in job.message


def test_a_folder_input_reads_every_jsonl_file_in_it():
    clock, storage, store = make(timing="fast", n=60)
    storage.put("bkt", "in/more.jsonl", jsonl([converse_record(i) for i in range(60, 120)]))
    storage.put("bkt", "in/readme.txt", b"ignored")
    job = store.create(request(src="s3://bkt/in/"), "us-east-1")
    clock.t = 100.0
    store.advance()
    assert job.status == "Completed" and job.counts()["totalRecordCount"] == 120
    assert {k for k, _ in storage.list_objects("bkt", f"out/{job.job_id}/")} == {
        f"out/{job.job_id}/{n}" for n in ("data.jsonl.out", "more.jsonl.out", "manifest.json.out")}


def test_records_per_file_and_job_quotas_are_data():
    clock, storage, store = make(timing="fast", n=120, overrides={"quotas": {"records_per_file": 110}})
    job = store.create(request(), "us-east-1")
    clock.t = 10.0
    store.advance()
    assert job.status == "Failed" and "120 records, more than the quota of 110 records per file" in job.message


def test_concurrent_jobs_per_base_model_are_refused_at_create():
    clock, storage, store = make(overrides={"quotas": {"concurrent_jobs": 2}})
    store.create(request("a"), "us-east-1")
    store.create(request("bkt", model="global." + HAIKU), "us-east-1")   # same base model
    with pytest.raises(ControlError) as e:
        store.create(request("c"), "us-east-1")
    assert e.value.code == "ServiceQuotaExceededException" and e.value.status == 400
    store.create(request("d", model="us.anthropic.claude-sonnet-4-5-20250929-v1:0"), "us-east-1")
    clock.t = 10_000.0    # both ended: room again
    store.create(request("e"), "us-east-1")


def test_stop_writes_what_was_processed_and_then_conflicts():
    clock, storage, store = make()
    tm = store.config.timing
    job = store.create(request(), "us-east-1")
    start = tm.submitted_s + tm.validation_s + tm.queue_wait_s
    clock.t = start + 30 * 60 / tm.records_per_minute     # 30 records done
    assert store.stop(job.arn, "us-east-1").status == "Stopping"
    clock.t += tm.stopping_s
    assert store.get(job.job_id, "us-east-1").status == "Stopped"
    assert job.counts() == {"totalRecordCount": 100, "processedRecordCount": 30, "successRecordCount": 30,
                            "errorRecordCount": 0}
    assert len(storage.get("bkt", f"out/{job.job_id}/data.jsonl.out").splitlines()) == 30
    with pytest.raises(ControlError) as e:
        store.stop(job.job_id, "us-east-1")
    assert e.value.code == "ConflictException"


@pytest.mark.parametrize("when", ["submitted", "just before it starts"])
def test_a_job_stopped_before_it_starts_writes_nothing(when):
    clock, storage, store = make()
    tm = store.config.timing
    job = store.create(request(), "us-east-1")
    if when != "submitted":
        # Scheduled; Stopping then lasts past the time it would have started
        clock.t = tm.submitted_s + tm.validation_s + tm.queue_wait_s - tm.stopping_s / 2
    store.stop(job.job_id, "us-east-1")
    clock.t = 10_000.0
    store.advance()
    assert job.status == "Stopped" and storage.list_objects("bkt", "out/") == []


def test_expired_and_partially_completed_follow_the_timeout():
    # queue longer than the 24 h timeout: Expired when the timeout passes
    clock, storage, store = make(overrides={"timing_presets": {"realistic": {"queue_wait_s": 200_000.0}}})
    job = store.create(request(), "us-east-1")
    clock.t = 24 * 3600.0
    assert store.get(job.job_id, "us-east-1").status == "Expired"
    # too slow to finish in time: PartiallyCompleted at the timeout, with what was done
    clock, storage, store = make(overrides={"timing_presets": {"realistic": {"records_per_minute": 0.05}}})
    job = store.create(request(), "us-east-1")
    clock.t = 30 * 3600.0
    assert store.get(job.job_id, "us-east-1").status == "PartiallyCompleted"
    assert 0 < job.counts()["processedRecordCount"] < 100
    assert job.end_t == pytest.approx(24 * 3600.0)


def test_client_request_token_is_idempotent_and_names_are_unique():
    clock, storage, store = make()
    a = store.create(request(clientRequestToken="tok1"), "us-east-1")
    assert store.create(request(clientRequestToken="tok1"), "us-east-1") is a
    with pytest.raises(ControlError) as e:
        store.create(request(clientRequestToken="tok2"), "us-east-1")
    assert e.value.code == "ConflictException"


def test_jobs_belong_to_their_region():
    clock, storage, store = make()
    job = store.create(request(model="global." + HAIKU), "eu-west-1")
    with pytest.raises(ControlError) as e:
        store.get(job.job_id, "us-east-1")
    assert e.value.code == "ResourceNotFoundException"
    assert store.get(job.arn, "eu-west-1") is job


@pytest.mark.parametrize("change, words", [
    ({"jobName": "bad name"}, "jobName"),
    ({"roleArn": "role"}, "roleArn"),
    ({"timeoutDurationInHours": 12}, "timeoutDurationInHours"),
    ({"modelInvocationType": "Chat"}, "modelInvocationType"),
    ({"inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://B/x"}}}, "s3Uri"),
])
def test_request_members_are_checked_as_botocore_models_them(change, words):
    body = {**request().wire, "jobName": "j", "roleArn": ROLE, "modelId": US_HAIKU, **change}
    with pytest.raises(RequestInvalid, match=words):
        JobRequest.parse(body)


def test_unknown_or_uncallable_models_are_refused_at_create():
    clock, storage, store = make()
    with pytest.raises(ControlError, match="model identifier is invalid"):
        store.create(request(model="anthropic.nope-v1:0"), "us-east-1")
    with pytest.raises(ControlError, match="on-demand throughput"):   # Sonnet 4.5: profiles only
        store.create(request(model="anthropic.claude-sonnet-4-5-20250929-v1:0"), "us-east-1")


def test_converse_records_with_tools_fail_with_400():
    tools = {"toolConfig": {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {}}}}]}}
    clock, storage, store = make(timing="fast", records=[converse_record(i, **tools) for i in range(100)])
    job = store.create(request(), "us-east-1")
    clock.t = 100.0
    store.advance()
    assert job.status == "Completed" and job.counts()["errorRecordCount"] == 100
    line = json.loads(storage.get("bkt", f"out/{job.job_id}/data.jsonl.out").splitlines()[0])
    assert line["error"]["errorCode"] == 400 and "modelOutput" not in line


def test_batch_config_errors_name_the_key():
    with pytest.raises(ValueError, match=r"emulator\.batch\.quotas\.concurrent_jobs: expected a positive integer"):
        BatchConfig.load(overrides={"quotas": {"concurrent_jobs": 0}})
    with pytest.raises(ValueError, match=r"emulator\.batch\.timing: expected one of"):
        BatchConfig.load(timing="slow")
    assert BatchConfig.load().quotas_for("us.amazon.nova-pro-v1:0").job_size_bytes == 100_000_000_000
