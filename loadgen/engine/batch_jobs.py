"""Batch inference jobs as data: how a batch arm's records are split into jobs, the JSONL
lines it uploads, where they go in S3, and what it reads back. Pure: no clock, no I/O.

Formats (AWS user guide, stored copies 2026-12-02; /work/research/issue13-facts.md §2):
  input line   {"recordId": "...", "modelInput": {...}}; with modelInvocationType
               "Converse" the modelInput is a Converse request body without modelId
               (batch-inference-data.md). loadgen keeps the body the on-demand arms send,
               cachePoints included, so the arms differ only in how they are billed and served.
  output line  {"recordId", "modelInput", "modelOutput"} or "error" ({"errorCode": 400,
               "errorMessage": "..."}) in place of modelOutput; modelOutput is the Converse
               response body, whose `usage` the record is billed from (batch-inference-results).
  layout       the output of job <id> is at <output s3Uri>/<id>/<input file>.out, beside
               manifest.json.out (AWS sample bedrock-batch-orchestrator, lambda/postprocess.py).
Quotas (records per job and per file, file and job size, minimum records per job) come from
the caller (emulator.toml [batch.quotas], AWS's defaults with their sources), as `BatchLimits`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# Converse keyword arguments that are not part of a batch record's modelInput: the model is
# the job's, and service tiers are an on-demand option.
_NOT_IN_RECORD = ("modelId", "serviceTier")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BatchLimits:
    """Bedrock's batch quotas for one model (records; bytes)."""

    min_records_per_job: int = 100
    records_per_job: int = 50_000
    records_per_file: int = 50_000
    file_size_bytes: int = 1_000_000_000
    job_size_bytes: int = 5_000_000_000

    def records_per_job_for(self, bytes_per_record: float) -> int:
        """The most records one job (of one input file) may hold when records are about
        `bytes_per_record` long: the record quotas and the size quotas, whichever binds."""
        n = min(self.records_per_job, self.records_per_file)
        if bytes_per_record > 0:
            n = min(n, int(min(self.file_size_bytes, self.job_size_bytes) // bytes_per_record))
        return max(1, n)


def split(n: int, most: int) -> list[int]:
    """Sizes of the jobs that carry `n` records with at most `most` per job: as few jobs as
    the quota allows, sizes as even as possible (so no job falls below the minimum when the
    total does not: 50,001 records are 25,001 + 25,000, not 50,000 + 1)."""
    if n <= 0:
        return []
    k = math.ceil(n / most)
    base, extra = divmod(n, k)
    return [base + 1 if i < extra else base for i in range(k)]


def record_id(index: int) -> str:
    """The recordId of the schedule's request `index` (its position in the shared schedule,
    so a record joins back to the same request on every run)."""
    return f"r{index:010d}"


def index_of(rid: str) -> int | None:
    """The request index a recordId names (None: not one of loadgen's)."""
    if len(rid) == 11 and rid[0] == "r" and rid[1:].isdigit():
        return int(rid[1:])
    return None


def record_line(index: int, params: Mapping[str, Any]) -> bytes:
    """One input JSONL line (with its newline) for the Converse request `params`."""
    body = {k: v for k, v in params.items() if k not in _NOT_IN_RECORD}
    line = {"recordId": record_id(index), "modelInput": body}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def safe_key(part: str) -> str:
    """`part` reduced to characters Bedrock's S3Uri pattern and job names accept."""
    return _UNSAFE.sub("-", part).strip("-.") or "x"


@dataclass(frozen=True)
class Layout:
    """Where one run's batch objects live: s3://bucket/<prefix><arm>/input/job-0000.jsonl,
    outputs under s3://bucket/<prefix><arm>/output/job-0000/ (Bedrock adds <job id>/)."""

    bucket: str
    prefix: str    # ends with "/" (or is "")
    tag: str = ""  # in the run's folder and job names: see `of`

    @classmethod
    def of(cls, bucket: str, prefix: str, salt: str, tag: str = "") -> "Layout":
        """The run's folder is `salt` (the results directory's name), then `-tag` when given:
        two runs of one scenario started in the same second (results directories of the
        same name under different --out folders) must not share S3 keys, or one run's
        --cleanup deletes the other's records."""
        run = safe_key(salt + (f"-{tag}" if tag else ""))
        parts = [safe_key(p) for p in prefix.strip("/").split("/") if p] + [run]
        return cls(bucket, "/".join(parts) + "/", tag)

    def input_key(self, arm: str, k: int) -> str:
        return f"{self.prefix}{safe_key(arm)}/input/job-{k:04d}.jsonl"

    def output_key(self, arm: str, k: int) -> str:
        return f"{self.prefix}{safe_key(arm)}/output/job-{k:04d}/"

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def job_name(self, arm: str, k: int) -> str:
        """A job name within Bedrock's pattern ([a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9+\\-.]){0,63}):
        unique per run and arm."""
        run = self.prefix.rstrip("/").rsplit("/", 1)[-1]
        tag = safe_key(self.tag) if self.tag else ""
        salt = run[:-len(tag) - 1] if tag and run.endswith(f"-{tag}") else run   # the run's folder ends with it
        # the tag before the salt, so the 120-character cut never takes it
        return f"loadgen-{safe_key(arm)}-{k}{f'-{tag}' if tag else ''}-{salt}"[:120].rstrip("-.")


@dataclass(frozen=True)
class OutputRecord:
    """One output line as loadgen reads it."""

    record_id: str
    usage: Mapping[str, Any] | None     # the Converse usage of a success
    stop_reason: str | None = None
    error_code: int | str | None = None  # errorCode of an `error` line
    error_message: str | None = None


def parse_output(data: bytes) -> list[OutputRecord]:
    """The lines of one `.jsonl.out` file; lines that are not JSON objects are skipped
    (their records then count as not completed, never as successes)."""
    out: list[OutputRecord] = []
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict) or "recordId" not in line:
            continue
        rid = str(line["recordId"])
        err = line.get("error")
        if isinstance(err, dict) or "modelOutput" not in line:
            err = err if isinstance(err, dict) else {}
            out.append(OutputRecord(rid, None, error_code=err.get("errorCode"),
                                    error_message=str(err.get("errorMessage") or "no modelOutput")[:300]))
            continue
        mo = line["modelOutput"] if isinstance(line["modelOutput"], dict) else {}
        usage = mo.get("usage") if isinstance(mo.get("usage"), dict) else {}
        out.append(OutputRecord(rid, usage, stop_reason=mo.get("stopReason")))
    return out


def leftovers(keys: Sequence[str], layout: Layout) -> list[str]:
    """The objects of `keys` under this run's prefix (input files, outputs, manifests)."""
    return sorted(k for k in keys if k.startswith(layout.prefix))
