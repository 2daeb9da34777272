"""The scenario's `[outputs]` table: the interval the run's per-interval figures are cut
at, and `[outputs.cloudwatch]`, metrics sent to CloudWatch while a run goes.

    [outputs]
    interval = "10s"                   # scenario time; HDR interval logs and --output jsonl

    [outputs.cloudwatch]
    namespace = "loadgen"              # required
    dimensions = ["scenario", "arm"]   # any of scenario, arm, model, profile
    storage_resolution = 60            # 1 (high resolution) or 60 seconds
    interval = "60s"                   # a whole multiple of [outputs] interval
    region = "us-east-1"               # default: [target] region
    max_queue = 20000                  # datums held while CloudWatch is slow or down

Limits come from CloudWatch's API (botocore's cloudwatch service-2.json and the
PutMetricData reference): a namespace is 1 to 255 characters, not starting with ':'
(and AWS refuses the reserved `AWS/` prefix); at most 30 dimensions per metric;
StorageResolution 1 or 60. The parser's context (`ctx`) is passed in, as for batch.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from loadgen.catalog.profiles import region_problem

OUTPUTS_KEYS = ("interval", "cloudwatch")
CLOUDWATCH_KEYS = ("namespace", "dimensions", "storage_resolution", "interval", "region", "max_queue")
DIMENSIONS = ("scenario", "arm", "model", "profile")
RESOLUTIONS = (1, 60)
DEFAULT_INTERVAL_S = 10.0
MIN_INTERVAL_S = 1.0        # scenario s: finer interval logs would be mostly empty lines
NAMESPACE_MAX = 255


@dataclass(frozen=True)
class CloudWatchOutput:
    """Where and how a run's interval figures go to CloudWatch (PutMetricData).

    `interval`: scenario seconds per datum (a whole multiple of `Outputs.interval`);
    `region`: None means the scenario's [target] region; `max_queue`: datums held
    while CloudWatch is slow or down, beyond which the oldest are dropped and counted.
    """

    namespace: str = "loadgen"
    dimensions: tuple[str, ...] = ("scenario", "arm")
    storage_resolution: int = 60
    interval: float = 60.0
    region: str | None = None
    max_queue: int = 20_000


@dataclass(frozen=True)
class Outputs:
    """`[outputs]`: `interval` in scenario seconds; `cloudwatch` None when not configured."""

    interval: float = DEFAULT_INTERVAL_S
    cloudwatch: CloudWatchOutput | None = None


def cloudwatch_default(interval: float, resolution: int = 60) -> float:
    """The CloudWatch interval when none is given: a minute for standard resolution,
    the [outputs] interval for high resolution, each rounded up to a whole multiple of it."""
    want = 60.0 if resolution == 60 else interval
    n = max(1, -(-round(want * 1e6) // round(interval * 1e6)))
    return n * interval


def namespace_problem(ns: str) -> str | None:
    """Why CloudWatch would refuse `ns` as a namespace, or None."""
    if not 1 <= len(ns) <= NAMESPACE_MAX:
        return f"expected 1 to {NAMESPACE_MAX} characters, got {len(ns)}"
    if ns.startswith(":"):
        return "a namespace may not start with ':'"
    if ns.startswith("AWS/"):
        return "the AWS/ prefix is reserved for AWS's own metrics; choose another namespace"
    return None


def read_outputs(ctx: Any, raw: Mapping[str, Any]) -> Outputs:
    """`[outputs]` and `[outputs.cloudwatch]`, checked (defaults where absent or wrong)."""
    t = ctx.table(raw, (), "outputs")
    if t is None:
        return Outputs()
    p = ("outputs",)
    ctx.keys(t, p, OUTPUTS_KEYS)
    interval = _interval(ctx, t, p, DEFAULT_INTERVAL_S)
    return Outputs(interval=interval, cloudwatch=_cloudwatch(ctx, t, p, interval))


def _interval(ctx: Any, t: Mapping[str, Any], p: tuple, default: float) -> float:
    v = ctx.duration(t, p, "interval", default)
    if v is not None and v < MIN_INTERVAL_S:
        ctx.err(p + ("interval",), f"expected at least 1s, got {t['interval']!r}: interval logs and "
                                   "streams are cut in whole seconds or more")
        return default
    return default if v is None else v


def _cloudwatch(ctx: Any, t: Mapping[str, Any], p: tuple, base: float) -> CloudWatchOutput | None:
    c = ctx.table(t, p, "cloudwatch")
    if c is None:
        return None
    cp = p + ("cloudwatch",)
    ctx.keys(c, cp, CLOUDWATCH_KEYS)
    d = CloudWatchOutput()
    ns = ctx.str_(c, cp, "namespace", what='a CloudWatch namespace like "loadgen"')
    problem = namespace_problem(ns) if ns is not None else None
    if problem:
        ctx.err(cp + ("namespace",), problem)
    dims = _dimensions(ctx, c, cp, d.dimensions)
    res = c.get("storage_resolution", d.storage_resolution)
    if isinstance(res, bool) or res not in RESOLUTIONS:
        ctx.err(cp + ("storage_resolution",), f"expected 1 (high resolution) or 60 (standard), got {res!r}")
        res = d.storage_resolution
    interval = cloudwatch_default(base, res)
    if "interval" in c:
        v = _interval(ctx, c, cp, interval)
        ratio = v / base
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            ctx.err(cp + ("interval",), f"expected a whole multiple of [outputs] interval ({base:g}s), got "
                                        f"{c['interval']!r}: CloudWatch datums are made by adding whole intervals")
        else:
            interval = v
    region = ctx.str_(c, cp, "region", None)
    if region is not None and region_problem(region):
        ctx.err(cp + ("region",), region_problem(region))
        region = None
    max_queue = ctx.int_(c, cp, "max_queue", d.max_queue, minimum=1)
    return CloudWatchOutput(namespace=ns or d.namespace, dimensions=dims, storage_resolution=int(res),
                            interval=interval, region=region, max_queue=max_queue or d.max_queue)


def _dimensions(ctx: Any, c: Mapping[str, Any], cp: tuple, default: tuple[str, ...]) -> tuple[str, ...]:
    v = c.get("dimensions", default)
    if isinstance(v, tuple):
        return v
    hint = f'an array of names from {", ".join(DIMENSIONS)}, like ["scenario", "arm"]'
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        ctx.err(cp + ("dimensions",), f"expected {hint}, got {v!r}")
        return default
    bad = [x for x in v if x not in DIMENSIONS]
    if bad:
        ctx.err(cp + ("dimensions",), f"unknown dimension {bad[0]!r}; expected {hint}")
        return default
    if len(set(v)) != len(v):
        ctx.err(cp + ("dimensions",), f"a dimension is named twice in {v!r}")
        return default
    return tuple(v)
