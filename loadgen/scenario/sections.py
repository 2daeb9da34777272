"""Section readers: [target], [model], [workload], [sessions], [retry]."""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from loadgen.catalog.models import ModelInfo, UnknownModel, lookup
from loadgen.catalog.profiles import region_problem, split
from loadgen.scenario.fields import MISSING, Ctx, type_name
from loadgen.scenario.schema import Model, Retry, Sessions, Target, Workload
from loadgen.scenario.batch import target_batch
from loadgen.scenario.traffic import read_dist, read_process
from loadgen.scenario.units import format_duration

TARGET_KEYS = ("kind", "region", "time_scale", "endpoint_url", "max_in_flight", "request_timeout", "batch")
MODEL_KEYS = ("id", "max_tokens", "stream", "temperature")
WORKLOAD_KEYS = ("kind", "prefix_tokens", "question_tokens", "turn_tokens", "output_tokens", "turns",
                 "checkpoint_pattern")
CHECKPOINT_PATTERNS = ("kept", "moving")
SESSIONS_KEYS = ("arrival", "think_time")
RETRY_KEYS = ("policy", "max_attempts", "base", "cap", "jitter", "on")
RETRY_ON = ("throttled", "5xx", "timeout")

# The warp clock's fastest useful speed. asyncio waits in epoll_wait, which counts whole
# milliseconds (CPython Lib/selectors.py rounds a timeout up to 1 ms), and one loopback HTTP
# round trip takes about as long; at x1000 that millisecond is a full second of scenario
# time, already above the emulator's median modelled TTFT (0.6 s, loadgen/catalog/data/emulator.toml).
MAX_TIME_SCALE = 1000.0


def read_target(ctx: Ctx, raw: Mapping[str, Any]) -> Target:
    t = ctx.table(raw, (), "target")
    if t is None:
        return Target()
    p = ("target",)
    ctx.keys(t, p, TARGET_KEYS)
    d = Target()
    kind = ctx.str_(t, p, "kind", d.kind, choices=("emulator", "aws"))
    scale = ctx.num(t, p, "time_scale", d.time_scale, low=0, low_open=True)
    problem = time_scale_problem(scale) if scale is not None else None
    if problem:
        ctx.err(p + ("time_scale",), problem)
        scale = d.time_scale
    if kind == "aws" and scale != 1.0:
        ctx.err(p + ("time_scale",), "time_scale applies to the emulator target only; kind = \"aws\" "
                                     "always runs on the real clock (remove time_scale or set it to 1)")
    region = ctx.str_(t, p, "region", d.region)
    problem = region_problem(region) if region else 'expected a Region name like "us-east-1"'
    if problem:
        ctx.err(p + ("region",), problem)
        region = d.region
    return Target(
        kind=kind, region=region, time_scale=scale,
        endpoint_url=ctx.str_(t, p, "endpoint_url", d.endpoint_url),
        max_in_flight=ctx.int_(t, p, "max_in_flight", d.max_in_flight, minimum=1),
        request_timeout=_request_timeout(ctx, t, p, d.request_timeout),
        batch=target_batch(ctx, t, p),
    )


def _request_timeout(ctx: Ctx, t: Mapping[str, Any], p: tuple, default: float) -> float:
    """At least 1 ms: the event loop cannot time anything shorter (epoll_wait counts whole
    milliseconds), so a shorter timeout would fail every request."""
    v = ctx.duration(t, p, "request_timeout", default)
    if v is not None and v < 0.001:
        ctx.err(p + ("request_timeout",), f"expected at least 1ms, got {t['request_timeout']!r}: the event "
                                          "loop cannot time anything shorter, so every request would time out")
        return default
    return default if v is None else v


def time_scale_problem(scale: float) -> str | None:
    """Why a warp-clock scale cannot give meaningful figures, or None (shared with --time-scale)."""
    if scale > MAX_TIME_SCALE:
        return (f"expected at most {MAX_TIME_SCALE:g}, got {scale:g}: the event loop times sleeps to ~1 ms "
                f"of real time, which at x{scale:g} is {scale / 1000:g} s of scenario time, so every modelled "
                f"latency (and the request timeout) would drown in clock granularity and transport overhead")
    return None


def lookup_model(ctx: Ctx, path: tuple, model_id: str) -> ModelInfo | None:
    try:
        return lookup(model_id)
    except UnknownModel as e:
        ctx.err(path, str(e))
        return None


def check_profile(ctx: Ctx, path: tuple, model_id: str, info: ModelInfo, region: str) -> None:
    """Does the profile in `model_id` exist for this model, called from `region`?"""
    kind, prefix, _ = split(model_id)
    if kind == "region" and not info.in_region_at(region):
        where = (f"; in-Region it is served only in {', '.join(info.in_region_regions)}"
                 if info.in_region_regions else "")
        exist = ", ".join(info.profiles_from(region)) or "none"
        ctx.err(path, f"{info.name} is not served on demand by its bare id in {region} (Bedrock answers "
                      f"400 ValidationException \"Invocation of model ID {model_id} with on-demand throughput "
                      f"isn\u2019t supported...\"){where}; use an inference profile that exists: {exist} "
                      f'(profile = "geo" or "global")')
    if kind == "geo" and prefix not in info.geo_profiles:
        ctx.err(path, f"{info.name} has no {prefix}. geographic inference profile "
                      f"(it has: {', '.join(p + '.' for p in info.geo_profiles) or 'none'}), so {model_id!r} "
                      f"does not exist")
    if kind == "global" and not info.global_profile:
        ctx.err(path, f"{info.name} has no global. inference profile, so {model_id!r} does not exist; "
                      f'use profile = "geo" or "region"')


def check_max_tokens(ctx: Ctx, path: tuple, value: int | None, info: ModelInfo | None) -> None:
    if value is not None and info is not None and value > info.max_output_tokens:
        ctx.err(path, f"max_tokens = {value} is above {info.name}'s limit of {info.max_output_tokens} "
                      f"output tokens")


def read_model(ctx: Ctx, raw: Mapping[str, Any]) -> tuple[Model, ModelInfo | None]:
    t = ctx.table(raw, (), "model", required=True)
    p = ("model",)
    if t is None:
        return Model(id=""), None
    ctx.keys(t, p, MODEL_KEYS)
    mid = ctx.str_(t, p, "id", what='a model id like "anthropic.claude-haiku-4-5-20251001-v1:0"')
    info = lookup_model(ctx, p + ("id",), mid) if mid else None
    # Omitted: requests omit maxTokens and Bedrock reserves the model's maximum output
    # (botocore InferenceConfiguration.maxTokens); arms inherit that.
    max_tokens = ctx.int_(t, p, "max_tokens", info.max_output_tokens if info else 512, minimum=1)
    check_max_tokens(ctx, p + ("max_tokens",), max_tokens, info)
    return Model(
        id=mid or "", max_tokens=max_tokens, max_tokens_set="max_tokens" in t,
        stream=ctx.bool_(t, p, "stream", True),
        temperature=ctx.num(t, p, "temperature", None, low=0, high=1),
    ), info


def read_workload(ctx: Ctx, raw: Mapping[str, Any]) -> Workload | None:
    t = ctx.table(raw, (), "workload", required=True)
    p = ("workload",)
    if t is None:
        return None
    kind = ctx.str_(t, p, "kind", choices=("single", "agent"))
    elsewhere = {}
    if kind == "single":
        elsewhere = {"turn_tokens": 'only for kind = "agent"; a single-turn workload uses question_tokens',
                     "turns": 'only for kind = "agent"; a single-turn workload has one turn',
                     "checkpoint_pattern": 'only for kind = "agent"; a single-turn workload has one '
                                           'checkpoint, after the system prompt'}
    elif kind == "agent":
        elsewhere = {"question_tokens": 'only for kind = "single"; an agent workload uses turn_tokens'}
    ctx.keys(t, p, tuple(k for k in WORKLOAD_KEYS if k not in elsewhere), elsewhere)
    prefix = ctx.int_(t, p, "prefix_tokens", minimum=1)
    out_raw = t.get("output_tokens", MISSING)
    if out_raw is MISSING:
        ctx.err(p + ("output_tokens",), 'missing; expected tokens to produce, e.g. 200 or '
                                        '{ dist = "lognormal", median = 200, p90 = 600 }')
        output = None
    else:
        output = read_dist(ctx, out_raw, p + ("output_tokens",), "tokens")
    question = turn = None
    if kind == "single" and "question_tokens" in t:
        question = read_dist(ctx, t["question_tokens"], p + ("question_tokens",), "tokens")
    if kind == "agent" and "turn_tokens" in t:
        turn = read_dist(ctx, t["turn_tokens"], p + ("turn_tokens",), "tokens")
    if kind == "agent" and "turn_tokens" not in t:
        ctx.err(p + ("turn_tokens",), 'missing; an agent workload needs the size of each new user turn, '
                                      'e.g. { dist = "lognormal", median = 300, p90 = 1200 }')
    tmin = tmax = 1
    pattern = "kept"
    if kind == "agent":
        tmin, tmax = _turns(ctx, t, p)
        pattern = ctx.str_(t, p, "checkpoint_pattern", "kept", choices=CHECKPOINT_PATTERNS)
    if kind is None or prefix is None or output is None:
        return None
    return Workload(kind=kind, prefix_tokens=prefix, output_tokens=output, question_tokens=question,
                    turn_tokens=turn, turns_min=tmin, turns_max=tmax, checkpoint_pattern=pattern)


def _turns(ctx: Ctx, t: Mapping[str, Any], p: tuple) -> tuple[int, int]:
    v = t.get("turns", MISSING)
    tp = p + ("turns",)
    if v is MISSING:
        ctx.err(tp, "missing; expected turns per session, e.g. { min = 5, max = 20 } or 10")
        return 1, 1
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            ctx.err(tp, f"expected at least 1 turn per session, got {v}")
            return 1, 1
        return v, v
    if not isinstance(v, dict):
        ctx.err(tp, f"expected {{ min = 5, max = 20 }} or a whole number, got {type_name(v)} {v!r}")
        return 1, 1
    ctx.keys(v, tp, ("min", "max"))
    lo = ctx.int_(v, tp, "min", minimum=1)
    hi = ctx.int_(v, tp, "max", minimum=1)
    if lo is None or hi is None:
        return 1, 1
    if lo > hi:
        ctx.err(tp + ("min",), f"turns min ({lo}) is above max ({hi})")
        return 1, 1
    return lo, hi


def read_sessions(ctx: Ctx, raw: Mapping[str, Any]) -> Sessions | None:
    t = ctx.table(raw, (), "sessions")
    if t is None:
        return None
    p = ("sessions",)
    ctx.keys(t, p, SESSIONS_KEYS)
    arrival = think = None
    if "arrival" not in t:
        ctx.err(p + ("arrival",), 'missing; expected when sessions start, e.g. { kind = "poisson", rate = "12/h" }')
    else:
        arrival = read_process(ctx, t["arrival"], p + ("arrival",), header=False)
    if "think_time" not in t:
        ctx.err(p + ("think_time",), 'missing; expected the gap between turns, e.g. '
                                     '{ dist = "lognormal", median = "3m", p90 = "15m" }')
    else:
        think = read_dist(ctx, t["think_time"], p + ("think_time",), "seconds")
    if arrival is None or think is None:
        return None
    return Sessions(arrival=arrival, think_time=think)


def read_retry(ctx: Ctx, raw: Mapping[str, Any]) -> Retry:
    t = ctx.table(raw, (), "retry")
    if t is None:
        return Retry()
    p = ("retry",)
    ctx.keys(t, p, RETRY_KEYS)
    d = Retry()
    policy = ctx.str_(t, p, "policy", "exponential" if "max_attempts" in t else d.policy,
                      choices=("off", "fixed", "exponential"))
    attempts = ctx.int_(t, p, "max_attempts", 1 if policy == "off" else 3, minimum=1)
    if policy == "off" and attempts > 1:
        ctx.err(p + ("max_attempts",), f'max_attempts = {attempts} with policy = "off": set policy = '
                                       '"fixed" or "exponential" to retry')
    base = ctx.duration(t, p, "base", d.base)
    cap = ctx.duration(t, p, "cap", d.cap)
    if base is not None and cap is not None and cap < base:
        ctx.err(p + ("cap",), f"cap ({format_duration(cap)}) is below base ({format_duration(base)})")
    on = t.get("on", MISSING)
    on_t = d.on
    if on is not MISSING:
        if not isinstance(on, list) or not all(isinstance(x, str) for x in on):
            ctx.err(p + ("on",), f"expected an array of {', '.join(RETRY_ON)}, got {on!r}")
        else:
            for i, x in enumerate(on):
                if x not in RETRY_ON:
                    near = difflib.get_close_matches(x, RETRY_ON, n=1)
                    ctx.err(p + ("on", i), f"expected one of {', '.join(RETRY_ON)}, got {x!r}"
                            + (f"; did you mean {near[0]!r}?" if near else ""))
            on_t = tuple(on)
    return Retry(policy=policy, max_attempts=attempts, base=base or d.base, cap=cap or d.cap,
                 jitter=ctx.bool_(t, p, "jitter", d.jitter), on=on_t)


