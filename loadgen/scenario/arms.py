"""[[arms]] and what hangs off them: names, model ids and profiles, service tiers,
per-arm [thresholds], [pricing] overrides, and the checks and warnings that need the
arms' models (prices, context window, cache minimum, max_tokens)."""

from __future__ import annotations

import difflib
import re
from typing import Any, Mapping

from loadgen.catalog import pricing
from loadgen.catalog.models import ModelInfo, UnknownModel, lookup
from loadgen.catalog.profiles import KINDS, kind_of, with_profile
from loadgen.scenario import thresholds
from loadgen.scenario.batch import arm_mode
from loadgen.scenario.fields import MISSING, Ctx, type_name
from loadgen.scenario.schema import Arm, Model, PriceOverride, Target, Threshold, Workload
from loadgen.scenario.sections import check_max_tokens, check_profile, lookup_model

ARM_KEYS = ("name", "model", "profile", "cache", "cache_ttl", "stream", "max_tokens", "temperature",
            "service_tier", "mode")
PRICE_KEYS = ("input_per_mtok", "output_per_mtok")
TTL_CHOICES = ("5m", "1h")
SERVICE_TIERS = ("priority", "default", "flex", "reserved")

# Arm and scenario names become parts of file and directory names (results/<name>-<time>/,
# histograms/<arm>.<metric>.hlog) and of cache keys: keep them plain ASCII, starting with
# a letter or digit (a leading '-' would read as an option to every shell tool), and short
# (file names stop at 255 bytes on common file systems; the timestamp suffix needs ~20).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
NAME_MAX_CHARS = 100
NAME_RULE = "ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"


def read_arms(ctx: Ctx, raw: Mapping[str, Any], model: Model, info: ModelInfo | None,
          target: Target) -> tuple[Arm, ...]:
    v = raw.get("arms", MISSING)
    if v is MISSING:
        items: list = [({}, ())]
    elif isinstance(v, dict):
        ctx.err(("arms",), "expected [[arms]] (an array of tables, double brackets), got a single [arms] table")
        return ()
    elif not isinstance(v, list) or not v or not all(isinstance(a, dict) for a in v):
        ctx.err(("arms",), "expected one or more [[arms]] tables")
        return ()
    else:
        items = [(a, ("arms", i)) for i, a in enumerate(v)]
    arms: list[Arm] = []
    seen: dict[str, int] = {}
    for a, p in items:
        if p:
            ctx.keys(a, p, ARM_KEYS)
            name = ctx.str_(a, p, "name", what='a name like "ttl-5m"')
            if name is not None and not name_ok(ctx, p + ("name",), name):
                name = None
            if name in seen:
                ctx.err(p + ("name",), f"duplicate arm name {name!r} (first used on line {seen[name]})")
            elif name is not None:
                seen[name] = ctx.line(p + ("name",))
        else:
            name = "default"
        arm_model = ctx.str_(a, p, "model", None) if p else None
        mid, ainfo, id_path = model.id, info, ("model", "id")
        if arm_model is not None:
            mid, id_path = arm_model, p + ("model",)
            ainfo = lookup_model(ctx, id_path, mid)
        profile = ctx.str_(a, p, "profile", None, choices=KINDS) if p else None
        if ainfo is not None:
            if profile is not None:
                try:
                    mid = with_profile(mid, profile, target.region)
                except ValueError as e:
                    ctx.err(p + ("profile",), f"{e} (target.region = {target.region!r})")
                    ainfo = None
                else:
                    id_path = p + ("profile",)
            else:
                profile = kind_of(mid)
            if ainfo is not None:
                check_profile(ctx, id_path, mid, ainfo, target.region)
        cache = ctx.bool_(a, p, "cache", True) if p else True
        ttl = ctx.str_(a, p, "cache_ttl", "5m", choices=TTL_CHOICES) if p else "5m"
        if ainfo is not None and cache and not ainfo.caching:
            ctx.err(p + ("cache",) if p and "cache" in a else id_path,
                    f"{ainfo.name} offers no prompt caching on Bedrock (models.toml), so a cachePoint "
                    "would be refused; " + ("set cache = false on this arm" if p
                                             else "add an [[arms]] table with cache = false"))
        elif ainfo is not None and cache and ttl is not None and not ainfo.supports_ttl(ttl):
            ctx.err(p + ("cache_ttl",), f"{ainfo.name} does not support a {ttl} cache TTL (it supports: "
                                        f"{', '.join(ainfo.cache_ttls)}); the 1h TTL needs a Claude 4.5 model")
        mode = arm_mode(ctx, a, p, ainfo)
        max_set = bool(p) and "max_tokens" in a or model.max_tokens_set
        inherited = model.max_tokens if max_set or ainfo is None else ainfo.max_output_tokens
        max_tokens = ctx.int_(a, p, "max_tokens", inherited, minimum=1) if p else inherited
        if p and "max_tokens" in a or arm_model is not None:
            check_max_tokens(ctx, p + ("max_tokens",) if "max_tokens" in a else id_path, max_tokens, ainfo)
        arms.append(Arm(
            name=name or f"arm-{len(arms)}", model_id=mid or "", profile=profile or kind_of(mid or ""),
            cache=cache, cache_ttl=ttl or "5m",
            stream=False if mode == "batch" else ctx.bool_(a, p, "stream", model.stream) if p else model.stream,
            max_tokens=max_tokens or model.max_tokens, max_tokens_set=max_set,
            temperature=ctx.num(a, p, "temperature", model.temperature, low=0, high=1) if p else model.temperature,
            service_tier=None if mode == "batch" else _service_tier(ctx, a, p, ainfo, target.kind),
            mode=mode,
        ))
    return tuple(arms)


def _service_tier(ctx: Ctx, a: Mapping[str, Any], p: tuple, info: Any, target_kind: str) -> str | None:
    """An arm's `service_tier` (Converse serviceTier.type), checked against the models.toml
    `service_tiers` of the arm's model: Bedrock refuses a tier the model does not offer."""
    tier = ctx.str_(a, p, "service_tier", None, choices=SERVICE_TIERS) if p else None
    if tier is None or info is None:
        return tier
    if tier not in info.service_tiers:
        ctx.err(p + ("service_tier",), f"model {info.base_id} ({info.name}) does not offer tier {tier!r}, "
                                       f"offered: {', '.join(info.service_tiers)} (models.toml service_tiers)")
    elif tier == "reserved" and target_kind != "aws":
        ctx.err(p + ("service_tier",), "the emulator has no reserved capacity, so Bedrock's answer "
                                       "\"Reservation not found.\" would fail every request; reserved "
                                       "needs target.kind = \"aws\" and a reservation")
    return tier


def name_ok(ctx: Ctx, path: tuple, name: str) -> bool:
    """A scenario or arm name names files and directories: NAME_RULE, at most NAME_MAX_CHARS."""
    if not name:
        ctx.err(path, f"expected a non-empty name ({NAME_RULE})")
        return False
    if len(name) > NAME_MAX_CHARS:
        ctx.err(path, f"expected at most {NAME_MAX_CHARS} characters (it names files and directories), "
                      f"got {len(name)}: {name[:20]!r}...")
        return False
    if not _NAME.fullmatch(name):
        bad = next((c for c in name if not re.fullmatch(r"[A-Za-z0-9._-]", c)), name[0])
        ctx.err(path, f"expected {NAME_RULE} (it names files and directories), got {name!r} "
                      f"(not allowed: {bad!r}{' at the start' if re.fullmatch(r'[._-]', bad) else ''})")
        return False
    return True


def read_thresholds(ctx: Ctx, raw: Mapping[str, Any], arm_names: list[str]) -> tuple[Threshold, ...]:
    t = ctx.table(raw, (), "thresholds")
    if t is None:
        return ()
    p = ("thresholds",)
    ctx.keys(t, p, ("all", "arms"))
    out: list[Threshold] = []

    def exprs(v: object, vp: tuple, arm: str | None) -> None:
        if not isinstance(v, list):
            ctx.err(vp, f'expected an array of expressions like ["p99(ttft) < 2s"], got {type_name(v)} {v!r}')
            return
        for i, e in enumerate(v):
            try:
                thresholds.parse(e)
            except ValueError as err:
                ctx.err(vp + (i,), str(err))
                continue
            out.append(Threshold(expr=e.strip(), arm=arm, line=ctx.line(vp + (i,))))

    if "all" in t:
        exprs(t["all"], p + ("all",), None)
    per_arm = ctx.table(t, p, "arms")
    for name, v in (per_arm or {}).items():
        ap = p + ("arms", name)
        if name not in arm_names:
            near = difflib.get_close_matches(name, arm_names, n=1)
            ctx.err(ap, f"no arm named {name!r}" + (f"; did you mean {near[0]!r}?" if near
                                                    else f" (arms: {', '.join(arm_names)})"))
            continue
        exprs(v, ap, name)
    return tuple(out)


def read_pricing(ctx: Ctx, raw: Mapping[str, Any]) -> tuple[PriceOverride, ...]:
    v = raw.get("pricing", MISSING)
    if v is MISSING:
        return ()
    items: list[tuple[tuple, str | None, Any]] = []
    if isinstance(v, dict):  # [pricing."us.anthropic..."] input_per_mtok = ..., output_per_mtok = ...
        items = [(("pricing", k), k, row) for k, row in v.items()]
    elif isinstance(v, list):  # [[pricing]] model_id = "...", ...
        for i, row in enumerate(v):
            mid = row.get("model_id") if isinstance(row, dict) else None
            items.append((("pricing", i), mid, row))
    else:
        ctx.err(("pricing",), f'expected [pricing."<model id>"] tables, got {type_name(v)}')
        return ()
    out = []
    for p, mid, row in items:
        if not isinstance(row, dict):
            ctx.err(p, f"expected a table with {', '.join(PRICE_KEYS)} (USD per 1M tokens), got {type_name(row)}")
            continue
        ctx.keys(row, p, PRICE_KEYS + (("model_id",) if isinstance(p[-1], int) else ()))
        if not isinstance(mid, str):
            ctx.err(p + ("model_id",), "missing; expected the model id this price is for")
            continue
        if lookup_model(ctx, p, mid) is None:
            continue
        i = ctx.num(row, p, "input_per_mtok", low=0)
        o = ctx.num(row, p, "output_per_mtok", low=0)
        if i is not None and o is not None:
            out.append(PriceOverride(model_id=mid, input_per_mtok=i, output_per_mtok=o))
    return tuple(out)


def check_prices(ctx: Ctx, arms: tuple[Arm, ...], overrides: tuple[PriceOverride, ...],
                  from_table: bool) -> None:
    """Every arm must be priceable, or its bill would be wrong (never silently $0)."""
    try:
        table = pricing.table_for(overrides)
    except pricing.PricingError as e:
        ctx.err(("pricing",), str(e))
        return
    for i, arm in enumerate(arms):
        try:
            table.price(arm.model_id)
            table.family_of(arm.model_id).write_mult(arm.cache_ttl) if arm.cache else None
        except pricing.PricingError as e:
            ctx.err(("arms", i) if from_table else ("model", "id"), str(e))


def check_context(ctx: Ctx, workload: Workload, arms: tuple[Arm, ...]) -> None:
    """A prefix longer than the model's context window fails every request (Bedrock answers
    ValidationException): refuse it here rather than run to 100 % failure."""
    for arm in arms:
        try:
            info = lookup(arm.model_id)
        except UnknownModel:
            continue
        if workload.prefix_tokens > info.context_window:
            ctx.err(("workload", "prefix_tokens"),
                    f"{workload.prefix_tokens} tokens is above {info.name}'s context window of "
                    f"{info.context_window} tokens (arm {arm.name!r}): every request would be refused")
            return


def cache_warnings(ctx: Ctx, workload: Workload, arms: tuple[Arm, ...]) -> None:
    for arm in arms:
        if not arm.cache:
            continue
        try:
            info = lookup(arm.model_id)
        except UnknownModel:
            continue
        if workload.prefix_tokens < info.cache_min_tokens:
            ctx.warn(("workload", "prefix_tokens"),
                     f"arm {arm.name!r} asks for caching, but prefix_tokens = {workload.prefix_tokens} is below "
                     f"{info.name}'s cache minimum of {info.cache_min_tokens} tokens: Bedrock silently ignores "
                     f"such a checkpoint (cacheReadInputTokens and cacheWriteInputTokens both 0), so the arm "
                     f"will pay full input price" + (" until an agent's history grows past the minimum"
                                                     if workload.kind == "agent" else ""))


def max_tokens_warnings(ctx: Ctx, arms: tuple[Arm, ...]) -> None:
    """A model AWS lists as Legacy may be gone (models.toml lifecycle, eol). An arm without max_tokens sends no maxTokens; Bedrock then reserves the model's maximum
    output per request against the TPM quota (botocore InferenceConfiguration.maxTokens;
    AWS quotas-token-burndown: reservation = input + max_tokens), which caps requests in
    flight long before the tokens actually used would."""
    said = set()
    for arm in arms:
        try:
            info = lookup(arm.model_id)
        except UnknownModel:
            continue
        if info.lifecycle == "legacy" and ("legacy", info.base_id) not in said:
            said.add(("legacy", info.base_id))
            ctx.warn(("model",), f"AWS lists {info.name} as Legacy (end of life {info.eol}, models.toml): "
                                 "Bedrock may no longer serve it; plan on its successor")
        if arm.max_tokens_set or info.base_id in said:
            continue
        said.add(info.base_id)
        ctx.warn(("model",), f"max_tokens is not set, so requests omit maxTokens and Bedrock defaults it to "
                             f"{info.name}'s maximum output, which reserves {info.max_output_tokens:,} "
                             f"tokens per request against your TPM quota (plus the input) until the request "
                             f"ends; set max_tokens to the longest reply you need")


