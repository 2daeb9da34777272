"""CreateModelInvocationJob's request, checked as Bedrock checks it, and the job's wire shape.

Members, constraints and patterns: botocore `bedrock` service-2.json (2023-04-20), shapes
CreateModelInvocationJobRequest, ModelInvocationJobInputDataConfig (a union: exactly one
member), S3Uri, GetModelInvocationJobResponse / ModelInvocationJobSummary. botocore checks
only required members and types before sending; patterns, lengths and enums are the
server's business, so the emulator checks them here (ValidationException; the texts are
the emulator's, Bedrock's are UNSOURCED).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

# The emulator's AWS account: AWS's documentation example account (and moto's default, so
# the S3 it serves belongs to the same account). Not a real account.
ACCOUNT_ID = "123456789012"


class ControlError(Exception):
    """An error of a control-plane call: HTTP status, Bedrock's error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def not_found(message: str) -> ControlError:
    return ControlError(404, "ResourceNotFoundException", message)


def invalid(message: str) -> ControlError:
    return ControlError(400, "ValidationException", message)


# patterns as botocore has them (fullmatch)
_JOB_NAME = re.compile(r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}")
_ROLE_ARN = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
_TOKEN = re.compile(r"[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}")
_S3_URI = re.compile(r"s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?")
JOB_IDENTIFIER = re.compile(r"((arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:model-invocation-job/)?[a-z0-9]{12})")
INVOCATION_TYPES = ("InvokeModel", "Converse")


class RequestInvalid(ValueError):
    """A request Bedrock refuses with ValidationException (the message)."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str     # "" for the bucket itself; may end with "/"

    @classmethod
    def parse(cls, uri: str) -> "S3Uri":
        bucket, _, key = uri[len("s3://"):].partition("/")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class JobRequest:
    """A CreateModelInvocationJob request that passed validation; `wire` keeps the members
    echoed back as sent (inputDataConfig, outputDataConfig, vpcConfig, tags)."""

    job_name: str
    role_arn: str
    model_id: str
    input_uri: S3Uri
    output_uri: S3Uri
    invocation_type: str               # effective: "InvokeModel" when omitted (the user guide's default)
    timeout_hours: int | None
    client_request_token: str | None
    wire: dict

    @classmethod
    def parse(cls, body: Any) -> "JobRequest":
        if not isinstance(body, dict):
            raise RequestInvalid("The request body must be a JSON object.")
        for k in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if k not in body:
                raise RequestInvalid(f"1 validation error detected: Value null at '{k}' failed to satisfy "
                                     "constraint: Member must not be null")
        _pattern(body, "jobName", _JOB_NAME, 63)
        _pattern(body, "roleArn", _ROLE_ARN, 2048)
        if "clientRequestToken" in body:
            _pattern(body, "clientRequestToken", _TOKEN, 256)
        mid = body["modelId"]
        if not isinstance(mid, str) or not 1 <= len(mid) <= 2048:
            raise RequestInvalid("modelId: expected a string of 1 to 2048 characters")
        src = _s3(body, "inputDataConfig", "s3InputDataConfig", ("s3Uri", "s3InputFormat", "s3BucketOwner"))
        dst = _s3(body, "outputDataConfig", "s3OutputDataConfig", ("s3Uri", "s3EncryptionKeyId", "s3BucketOwner"))
        fmt = body["inputDataConfig"]["s3InputDataConfig"].get("s3InputFormat", "JSONL")
        if fmt != "JSONL":
            raise RequestInvalid(f"inputDataConfig.s3InputDataConfig.s3InputFormat: expected JSONL, got {fmt!r}")
        itype = body.get("modelInvocationType", "InvokeModel")
        if itype not in INVOCATION_TYPES:
            raise RequestInvalid(f"modelInvocationType: expected one of {', '.join(INVOCATION_TYPES)}, got {itype!r}")
        hours = body.get("timeoutDurationInHours")
        if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int) or not 24 <= hours <= 168):
            raise RequestInvalid(f"timeoutDurationInHours: expected an integer from 24 to 168, got {hours!r}")
        tags = body.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 200:
            raise RequestInvalid("tags: expected a list of at most 200 {key, value} objects")
        wire = {k: body[k] for k in ("inputDataConfig", "outputDataConfig", "vpcConfig") if k in body}
        return cls(job_name=body["jobName"], role_arn=body["roleArn"], model_id=mid, input_uri=src,
                   output_uri=dst, invocation_type=itype, timeout_hours=hours,
                   client_request_token=body.get("clientRequestToken"), wire=wire)


def _pattern(body: dict, key: str, rx: re.Pattern, most: int) -> None:
    v = body[key]
    if not isinstance(v, str) or not 1 <= len(v) <= most or not rx.fullmatch(v):
        raise RequestInvalid(f"1 validation error detected: Value {v!r} at '{key}' failed to satisfy constraint: "
                             f"Member must satisfy regular expression pattern: {rx.pattern}")


def _s3(body: dict, key: str, member: str, allowed: tuple[str, ...]) -> S3Uri:
    """The s3Uri of a one-member union (ModelInvocationJobInputDataConfig / ...OutputDataConfig)."""
    u = body[key]
    if not isinstance(u, dict) or list(u) != [member]:
        raise RequestInvalid(f"{key}: expected exactly one member, {member}")
    cfg = u[member]
    if not isinstance(cfg, dict) or "s3Uri" not in cfg:
        raise RequestInvalid(f"{key}.{member}.s3Uri: required")
    extra = set(cfg) - set(allowed)
    if extra:
        raise RequestInvalid(f"{key}.{member}: unknown member(s) {sorted(extra)}")
    uri = cfg["s3Uri"]
    if not isinstance(uri, str) or not 1 <= len(uri) <= 1024 or not _S3_URI.fullmatch(uri):
        raise RequestInvalid(f"1 validation error detected: Value {uri!r} at '{key}.{member}.s3Uri' failed to "
                             f"satisfy constraint: Member must satisfy regular expression pattern: {_S3_URI.pattern}")
    return S3Uri.parse(uri)


def job_wire(job: Any, iso: Callable[[float], str]) -> dict:
    """GetModelInvocationJobResponse (= ModelInvocationJobSummary) members for a batch.Job;
    `iso` turns scenario seconds into the API's iso8601 timestamps. Record counts appear
    once the input is validated (ASSUMPTION: Bedrock's timing of them is UNSOURCED)."""
    r = job.req
    out: dict[str, Any] = {
        "jobArn": job.arn,
        "jobName": r.job_name,
        "modelId": r.model_id,
        "roleArn": r.role_arn,
        "status": job.status,
        "submitTime": iso(job.submit_t),
        "lastModifiedTime": iso(job.modified_t),
        **r.wire,
        "timeoutDurationInHours": job.timeout_h,
        "jobExpirationTime": iso(job.expire_t),
        "modelInvocationType": r.invocation_type,
    }
    if r.client_request_token is not None:
        out["clientRequestToken"] = r.client_request_token
    if job.message:
        out["message"] = job.message
    if job.end_t is not None:
        out["endTime"] = iso(job.end_t)
    if job.validated:
        out.update(job.counts())
    return out
