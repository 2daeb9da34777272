"""The `--target aws` path of a batch arm, against `loadgen emulator` (its control plane and
moto's S3) with `--endpoint-url` and AWS_ENDPOINT_URL_S3, never real AWS: the pre-flight
plan, a dry run that creates no job, the run itself, and the S3 objects it leaves
(listed, or removed with --cleanup)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import boto3
import pytest

from result_files import read_results

BUCKET = "my-batch-bucket"
ROLE = "arn:aws:iam::123456789012:role/loadgen-batch"


@pytest.fixture(scope="module")
def emulator():
    """`loadgen emulator` as a user starts it: (its URL, the env its export lines set)."""
    proc = subprocess.Popen([sys.executable, "-m", "loadgen", "emulator", "--port", "0", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(7)]
        url = lines[0].split()[-1]
        env = dict(re.findall(r"^export (AWS_ENDPOINT_URL_\w+)=(\S+)$", "".join(lines), re.M))
        assert url.startswith("http://127.0.0.1:") and "AWS_ENDPOINT_URL_S3" in env, lines
        yield url, env
    finally:
        proc.terminate()
        proc.wait(10)


def _env(emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
               AWS_ENDPOINT_URL_S3=emulator[1]["AWS_ENDPOINT_URL_S3"])
    return env


def _scenario(tmp_path, batch: str = f'batch = {{ bucket = "{BUCKET}", role_arn = "{ROLE}" }}'):
    p = tmp_path / "aws.toml"
    p.write_text(textwrap.dedent(f"""\
        name = "aws-batch"
        seed = 3
        duration = "2s"
        [target]
        region = "us-east-1"
        {batch}
        [model]
        id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        max_tokens = 50
        stream = false
        [workload]
        kind = "single"
        prefix_tokens = 200
        question_tokens = 20
        output_tokens = 20
        [arrivals]
        kind = "constant"
        rate = "60/s"
        [[arms]]
        name = "on-demand"
        [[arms]]
        name = "batch"
        mode = "batch"
        """))
    return p


def _loadgen(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loadgen", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_target_aws_with_a_batch_arm_needs_a_bucket_and_role(tmp_path):
    path = _scenario(tmp_path, batch="")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    for cmd in (["validate", str(path), "--target", "aws"], ["run", str(path), "--target", "aws", "--yes"]):
        r = _loadgen(*cmd, "--endpoint-url", "http://127.0.0.1:9", env=env)
        assert r.returncode == 2, r.stderr
        assert "needs an S3 bucket and a service role" in r.stderr and "[target] batch = {" in r.stderr


@pytest.mark.slow  # the emulator, moto and five loadgen processes on the real clock: about 15 s
def test_the_aws_path_against_the_emulator_and_moto(emulator, tmp_path):
    url, _ = emulator
    env = _env(emulator)
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    bedrock = boto3.client("bedrock", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id="x", aws_secret_access_key="x")
    s3.create_bucket(Bucket=BUCKET)
    path = _scenario(tmp_path)

    # the pre-flight plan names the S3 locations and the job count, and creates nothing
    r = _loadgen("validate", str(path), "--target", "aws", "--endpoint-url", url, env=env)
    assert r.returncode == 0, r.stderr
    assert "120 records in 1 job(s)" in r.stdout
    assert f"s3://{BUCKET}/loadgen/<run>/batch/input/job-NNNN.jsonl" in r.stdout
    # a run that is not confirmed (no --yes, no terminal) sends nothing
    r = _loadgen("run", str(path), "--target", "aws", "--endpoint-url", url, "--out", str(tmp_path / "no"), env=env)
    assert r.returncode == 2 and "refusing to send to AWS" in r.stderr
    assert "batch        120 records in 1 job(s)" in r.stdout
    assert bedrock.list_model_invocation_jobs()["invocationJobSummaries"] == []
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0

    # a run that leaves its objects and one that removes them (--cleanup), side by side: each
    # waits about 5 s on its job's second status poll, so one wait serves both. Their results
    # directories have the same name (as two runs of one scenario started in the same second
    # under two --out folders do): each run's objects are under that name plus a random tag,
    # so the objects left at the end are exactly the first run's (with the name alone the
    # --cleanup run deleted the other's)
    args = ("run", str(path), "--target", "aws", "--endpoint-url", url, "--yes", "--quiet")
    runs = [subprocess.Popen([sys.executable, "-m", "loadgen", *args, *more], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            for more in (("--max-cost-usd", "5", "--results-dir", str(tmp_path / "a" / "run")),
                         ("--cleanup", "--results-dir", str(tmp_path / "b" / "run")))]
    (out, err), (clean_out, clean_err) = (p.communicate(timeout=120) for p in runs)
    assert runs[0].returncode == 0, err
    assert runs[1].returncode == 0, clean_err
    summary, lines = read_results(tmp_path / "a" / "run")
    bt = summary["arms"]["batch"]["batch"]
    assert (bt["jobs_by_status"], bt["records_ok"]) == ({"Completed": 1}, 120)
    assert summary["arms"]["on-demand"]["requests"]["ok"] == 120
    jobs = bedrock.list_model_invocation_jobs()["invocationJobSummaries"]
    assert [(j["status"], j["modelInvocationType"]) for j in jobs] == [("Completed", "Converse")] * 2
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 3  # the first run's input, its .out and manifest.json.out
    assert all(k.startswith("loadgen/run-") and k.split("/")[1] != "run" for k in keys)  # name + tag
    assert "batch: 3 object(s) left under" in out and all(f"s3://{BUCKET}/{k}" in out for k in keys)
    assert "batch: removed 3 object(s) under" in clean_out and "left under" not in clean_out
