"""Batch arms in a scenario: `[[arms]] mode = "batch"` and `[target] batch = { ... }`.

A batch arm sends the shared schedule's requests as Bedrock batch inference records
(loadgen.engine.batch_arm). What the parser refuses, with the reason, at the key's line:

- `mode` other than "on_demand" (the default) or "batch";
- a batch arm on a model the catalog does not list as taking batch jobs (models.toml `batch`);
- `stream = true` on a batch arm: a job returns whole responses, never a stream (a
  `[model] stream = true` the arm inherits is simply not used by the batch arm);
- `service_tier` on a batch arm: tiers are an on-demand Converse option;
- a batch arm in a `[sessions]` scenario: an agent's next turn needs the previous reply,
  which a batch job returns hours later;
- `--target aws` (kind = "aws") with a batch arm and no `[target] batch` table with a
  bucket and role_arn: Bedrock reads and writes batch data in the caller's S3 bucket,
  with a service role it assumes. Against the emulator both default (the bucket is made
  in the emulator's S3).

The parser's context (`ctx`: err, str_, table, keys) is passed in, not imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

MODES = ("on_demand", "batch")
BATCH_KEYS = ("bucket", "role_arn", "prefix")
# botocore bedrock service-2.json: RoleArn and the S3Uri pattern's bucket and key characters
_ROLE_ARN = re.compile(r"arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+")
_BUCKET = re.compile(r"[a-z0-9][-.a-z0-9]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[-!_*'().a-zA-Z0-9/]*")
AWS_HINT = '[target] batch = { bucket = "my-bucket", role_arn = "arn:aws:iam::123456789012:role/my-batch-role" }'


@dataclass(frozen=True)
class BatchTarget:
    """Where batch arms put their records: an S3 bucket (and key prefix) Bedrock reads and
    writes with the service role `role_arn` (None: the emulator's stand-in role)."""

    bucket: str
    role_arn: str | None = None
    prefix: str = "loadgen"


def target_batch(ctx: Any, t: Mapping[str, Any], p: tuple) -> BatchTarget | None:
    """`[target] batch`, checked (None when absent or wrong)."""
    b = ctx.table(t, p, "batch")
    if b is None:
        return None
    bp = p + ("batch",)
    ctx.keys(b, bp, BATCH_KEYS)
    bucket = ctx.str_(b, bp, "bucket", what='an S3 bucket name like "my-batch-bucket"')
    if bucket is not None and not _BUCKET.fullmatch(bucket):
        ctx.err(bp + ("bucket",), f"expected an S3 bucket name (3 to 63 lower-case letters, digits, '.' "
                                  f"and '-'), got {bucket!r}")
        bucket = None
    role = ctx.str_(b, bp, "role_arn", None)
    if role is not None and not _ROLE_ARN.fullmatch(role):
        ctx.err(bp + ("role_arn",), f'expected an IAM role ARN like "arn:aws:iam::123456789012:role/name", '
                                    f"got {role!r}")
        role = None
    prefix = ctx.str_(b, bp, "prefix", "loadgen")
    if prefix is not None and not _PREFIX.fullmatch(prefix):
        ctx.err(bp + ("prefix",), f"expected an S3 key prefix of letters, digits and -!_*'()./, got {prefix!r}")
        prefix = None
    if bucket is None:
        return None
    return BatchTarget(bucket=bucket, role_arn=role, prefix=(prefix or "loadgen").strip("/"))


def arm_mode(ctx: Any, a: Mapping[str, Any], p: tuple, info: Any) -> str:
    """An arm's `mode`, with the batch arm's own checks (model, stream, service_tier)."""
    mode = ctx.str_(a, p, "mode", "on_demand", choices=MODES) if p else "on_demand"
    if mode != "batch":
        return mode or "on_demand"
    if info is not None and not info.batch:
        ctx.err(p + ("mode",), f"{info.name} takes no batch inference jobs in the catalog (models.toml "
                               f"`batch`), so Bedrock would refuse the job; use a model that does or "
                               f"mode = \"on_demand\"")
    if a.get("stream") is True:
        ctx.err(p + ("stream",), "a batch job returns whole responses, never a stream, so there is no "
                                 "time to first token; remove stream from this arm")
    if a.get("service_tier") is not None:
        ctx.err(p + ("service_tier",), "service tiers are an on-demand Converse option; a batch arm is "
                                       "billed at the batch price (remove service_tier)")
    return mode


def check_scenario(ctx: Any, arms: Any, target: Any, has_sessions: bool) -> None:
    """What a batch arm needs from the rest of the scenario: open-loop [arrivals], and
    against AWS a bucket and role."""
    for i, arm in enumerate(arms):
        if getattr(arm, "mode", "on_demand") != "batch":
            continue
        p = ("arms", i, "mode")
        if has_sessions:
            ctx.err(p, "a batch arm takes [arrivals] (single-turn requests): an agent session's next "
                       "turn needs the previous reply, which a batch job returns hours later")
        if target.kind == "aws":
            b = target.batch
            if b is None:
                ctx.err(p, f"a batch arm against AWS needs an S3 bucket and a service role: add {AWS_HINT}")
            elif b.role_arn is None:
                ctx.err(("target", "batch"), "a batch arm against AWS needs role_arn: the IAM role Bedrock "
                                             f"assumes to read and write {b.bucket}")
        return  # the scenario-wide problems once, at the first batch arm


def aws_problem(arms: Any, target: Any) -> str | None:
    """Why a run of these arms against AWS cannot start (a batch arm without `[target] batch`
    bucket and role_arn), or None: for `--target aws` on a file whose own target is the emulator."""
    if target.kind != "aws" or not any(getattr(a, "mode", "on_demand") == "batch" for a in arms):
        return None
    if target.batch is None:
        return f"a batch arm against AWS needs an S3 bucket and a service role: add {AWS_HINT} to the scenario"
    if target.batch.role_arn is None:
        return (f"a batch arm against AWS needs [target] batch role_arn: the IAM role Bedrock assumes to "
                f"read and write {target.batch.bucket}")
    return None
