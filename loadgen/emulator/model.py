"""EmulatorModel: Bedrock's behaviour as pure computation on an injected clock and rng.

No sockets and no sleeping: `begin()` decides everything about one request at its
start (validation, routing, quotas, prompt cache, usage, output text, faults, and the
timing schedule in scenario seconds relative to the start), and returns a Plan the
caller paces (the HTTP server with clock.sleep_until, or a virtual-time simulator).
`finish()` corrects the quota charge once the request is over.

Order of decisions for one request (each step can end it with a BedrockError):
  1. model id (bare, geo, global, or inference-profile ARN) and body validation
  2. injected faults drawn by rate (5xx, ModelNotReady, ...)
  3. quota of (model id as called, caller Region): RPM and TPM in a 60-s window, TPD
     (off unless configured) in a day; reservation = all input tokens + maxTokens
  4. routing to a serving Region (source preference, spill-over, brown-outs), whose
     own capacity can throttle
  5. prompt cache in the cache Region: longest live prefix read (at a checkpoint or, for
     models with a lookback, an earlier block position near one), the rest written
  6. output length, text, stop reason; latency; mid-stream faults
"""

from __future__ import annotations

import json
import math
import random
import uuid
from dataclasses import dataclass
from typing import Any

from loadgen.catalog import profiles
from loadgen.emulator.cache import PromptCache
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.errors import BedrockError, error, quota_value, validation
from loadgen.emulator.request import count_input, parse
from loadgen.emulator.window import Charge, Window
from loadgen.catalog.models import TTL_SECONDS, ModelInfo, UnknownModel, lookup
from loadgen.catalog.tokens import CHARS_PER_TOKEN, count_tokens

__all__ = ["EmulatorModel", "Plan", "Usage", "StreamFault", "BedrockError", "resolve_model_id",
           "on_demand_unsupported"]

_Z90 = 1.2815515655446004  # standard normal quantile at 0.90
DAY_S = 86_400.0            # the tokens-per-day window, scenario s

# Service tiers under contention (docs/emulator.md, "Service tiers"). Documented by AWS:
# the on-demand quota of a model is shared across all tiers (service-tiers-inference.html),
# priority requests "are prioritized over Standard and Flex", and flex requests "receive
# lower priority relative to the Standard tier" during high demand (What's New, 2025-11-18).
# How much is not published, so these are ASSUMPTIONS:
#   - flex is admitted only while the shared TPM window stays at or under FLEX_QUOTA_SHARE of
#     the quota after its reservation: the top of the quota is held for default and priority,
#     so flex throttles first and default/priority still get the whole quota;
#   - queueing delay at a busy Region is scaled per tier (priority skips the queue, flex
#     waits twice as long);
#   - priority output runs 25 % faster (What's New: "up to 25% better output tokens per
#     second"; the emulator takes the upper bound).
FLEX_QUOTA_SHARE = 0.8
TIER_QUEUE_FACTOR = {"priority": 0.0, "default": 1.0, "flex": 2.0}
PRIORITY_TPS_GAIN = 1.25

# Cheap deterministic output text; no stop sequence a user is likely to set occurs in it
# by accident except plain words. Sliced to length, so count_tokens(text) == tokens.
_SENTENCE = "The emulator streams this filler text so that clients receive the requested length. "
_FILLER = _SENTENCE * (64_000 * CHARS_PER_TOKEN // len(_SENTENCE) + 2)
# The input of a forced tool call (JSON text, as a stream's toolUse delta carries it): an
# empty object, whatever the tool's schema (the emulator does not generate arguments).
TOOL_INPUT = "{}"


@dataclass(frozen=True)
class Usage:
    """Token usage as Converse reports it (tokens). input_tokens counts uncached input only."""

    input_tokens: int
    output_tokens: int
    cache_read: int = 0
    cache_write: int = 0
    cache_details: tuple[tuple[str, int], ...] = ()   # (ttl, write tokens), 1h before 5m

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read + self.cache_write

    def to_wire(self) -> dict[str, Any]:
        u: dict[str, Any] = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens,
            "cacheReadInputTokens": self.cache_read,
            "cacheWriteInputTokens": self.cache_write,
        }
        if self.cache_details:
            u["cacheDetails"] = [{"ttl": t, "inputTokens": n} for t, n in self.cache_details]
        return u


@dataclass(frozen=True)
class StreamFault:
    """A failure during the response: after `after_deltas` text deltas were sent,
    either an exception event (`kind="exception"`, code = the event type such as
    modelStreamErrorException) or a dropped connection (`kind="reset"`)."""

    kind: str
    after_deltas: int
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class Plan:
    """Everything about one accepted request. Times are scenario seconds; offsets are
    relative to `start`."""

    request_id: str
    model_id: str            # as called
    base_id: str
    stream: bool
    source_region: str
    served_region: str
    start: float
    usage: Usage
    text: str
    stop_reason: str         # end_turn | max_tokens | stop_sequence
    ttft_s: float
    tokens_per_s: float      # 0 = all output at ttft
    duration_s: float        # offset of the last token (= response end for Converse)
    chunk_tokens: int
    fault: StreamFault | None = None
    tool_use: tuple[str, str] | None = None   # (toolUseId, name) when a toolChoice forced a call
    service_tier: str | None = None   # serviceTier.type the request asked for (echoed back)

    @property
    def latency_ms(self) -> int:
        return int(round(self.duration_s * 1000))

    def deltas(self) -> list[tuple[float, str]]:
        """(offset s, text) of each contentBlockDelta, in order. Token i is generated at
        ttft + i / tokens_per_s; a delta leaves when its first token is ready, so the first
        delta is at exactly ttft_s (the final events follow at duration_s)."""
        text = self.text
        if not text:
            return []
        step = self.chunk_tokens * CHARS_PER_TOKEN
        out = []
        for k, i in enumerate(range(0, len(text), step)):
            first_token = k * self.chunk_tokens
            t = self.ttft_s + (first_token / self.tokens_per_s if self.tokens_per_s > 0 else 0.0)
            out.append((t, text[i:i + step]))
        return out

    def response_body(self) -> dict[str, Any]:
        """The Converse (non-streaming) JSON response."""
        if self.tool_use is not None:
            content: list = [{"toolUse": {"toolUseId": self.tool_use[0], "name": self.tool_use[1],
                                          "input": json.loads(TOOL_INPUT)}}]
        else:
            content = [{"text": self.text}]
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop_reason,
            "usage": self.usage.to_wire(),
            "metrics": {"latencyMs": self.latency_ms},
            **self.tier_wire(),
        }

    def tier_wire(self) -> dict[str, Any]:
        """`serviceTier` as botocore's output shapes have it: a top-level member of
        ConverseResponse and of the stream's ConverseStreamMetadataEvent (botocore >= 1.40.76).
        ASSUMPTION: echoed only when the request set one (Bedrock's answer to a request
        without serviceTier is not documented)."""
        return {"serviceTier": {"type": self.service_tier}} if self.service_tier else {}


def on_demand_unsupported(model_id: str) -> str:
    """Bedrock's ValidationException text for a bare id the Region does not serve on demand."""
    return (f"Invocation of model ID {model_id} with on-demand throughput isn\u2019t supported. "
            "Retry your request with the ID or ARN of an inference profile that contains this model.")


def resolve_model_id(model_id: str) -> str:
    """The model id inside an inference-profile or foundation-model ARN; else unchanged."""
    if model_id.startswith("arn:"):
        return model_id.rsplit("/", 1)[-1]
    return model_id


@dataclass
class _Open:
    """Charges of a request in flight, corrected by finish()."""

    quota: Charge | None
    load: Charge | None
    quota_window: Window | None
    load_window: Window | None
    burndown: float
    day: Charge | None = None
    day_window: Window | None = None


class EmulatorModel:
    def __init__(self, config: EmulatorConfig, *, clock: Any, rng: random.Random,
                 region: str = "us-east-1") -> None:
        self.config = config
        self.clock = clock
        self.rng = rng
        self.region = region
        self._ids = random.Random(rng.getrandbits(64))  # separate stream: ids don't shift draws
        self.cache = PromptCache(config.cache_max_entries)
        self._tpm: dict[tuple[str, str], Window] = {}
        self._rpm: dict[tuple[str, str], Window] = {}
        self._tpd: dict[tuple[str, str], Window] = {}
        self._load: dict[tuple[str, str], Window] = {}
        self._open: dict[str, _Open] = {}
        self._out_sigma = math.log(config.output_p90 / config.output_median) / _Z90
        # characters per token of the CountTokens route; tests set another value to stand in
        # for a real tokenizer that disagrees with loadgen's chars/4 rule
        self.chars_per_token = CHARS_PER_TOKEN

    # -- helpers ---------------------------------------------------------------

    def _window(self, table: dict, key: tuple[str, str], window_s: float | None = None) -> Window:
        w = table.get(key)
        if w is None:
            w = table[key] = Window(window_s or self.config.window_s, self.config.window)
        return w

    def _request_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _lognormal(self, median: float, sigma: float) -> float:
        if sigma <= 0 or median <= 0:
            return median
        return median * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def _resolve(self, model_id: str, src: str) -> tuple[str, ModelInfo] | BedrockError:
        mid = resolve_model_id(model_id)
        try:
            info = lookup(mid)
        except UnknownModel:
            return validation(f"The provided model identifier is invalid. ({model_id!r} is not in the "
                              f"emulator's model catalog)")
        kind, prefix, _ = profiles.split(mid)
        if kind == "region" and not info.in_region_at(src):
            # Bedrock's answer for a model it serves through inference profiles only
            # (models.toml in_region); text as quoted in anthropics/anthropic-sdk-python#894,
            # U+2019 apostrophe included.
            return validation(on_demand_unsupported(mid))
        if kind == "geo" and (prefix not in info.geo_profiles or not profiles.callable_from(mid, src)):
            # Bedrock's text for a geo profile called from outside its geography: a `us.` id
            # from eu-west-3 in danny-avila/LibreChat#5001 (profiles.toml has the CONFLICT)
            return validation(f"The provided model identifier is invalid. (no {prefix}. inference profile "
                              f"for {info.base_id} callable from {src})")
        if kind == "global" and not info.global_profile:
            return validation(f"The provided model identifier is invalid. (no global inference profile "
                              f"for {info.base_id})")
        return mid, info

    def _brownout(self, region: str, now: float):
        for b in self.config.faults.brownouts:
            if b.region == region and b.start_s <= now < b.end_s:
                return b
        return None

    def _queue_s(self, util: float) -> float:
        """Extra ttft from queueing at Region utilisation `util` (seconds): 0 up to the
        knee, then quadratic up to `queue_max_s` at 100 %."""
        lat = self.config.latency
        if util <= lat.queue_knee or lat.queue_knee >= 1.0:
            return 0.0
        return lat.queue_max_s * min(1.0, (util - lat.queue_knee) / (1.0 - lat.queue_knee)) ** 2

    def _route(self, mid: str, base: str, need: float, now: float, src: str) -> tuple[str, float] | BedrockError:
        """(serving Region, its utilisation after this request) or a regional throttle.

        ASSUMPTION (loadgen/catalog/data/emulator.toml, [routing]): the source Region serves while
        it stays at or under `spill_at` of its capacity (shipped below the queueing knee, so
        routing happens before the source Region's latency climbs); above that the request
        goes to the first destination still under `spill_at`; when every destination is
        over it, to the one with the least expected extra ttft (queueing + cross-Region
        time). So a profile with more destination Regions holds more load before any
        Region queues."""
        cap = self.config.region_capacity_tpm
        kind = profiles.kind_of(mid)
        regions = profiles.destination_regions(mid, src)
        if kind != "region":
            # a profile steers around Regions in a brown-out (ASSUMPTION, documented)
            healthy = tuple(r for r in regions if self._brownout(r, now) is None)
            regions = healthy or regions
        if cap == 0:
            return regions[0], 0.0
        util = [(self._window(self._load, (base, r)).total(now) + need) / cap for r in regions]
        spill_at = self.config.spill_at
        if self.config.prefer_source:
            for r, u in zip(regions, util):
                if u <= spill_at:
                    return r, u
        else:
            i = min(range(len(regions)), key=lambda j: util[j])
            if util[i] <= spill_at:
                return regions[i], util[i]
        open_ = [j for j in range(len(regions)) if util[j] <= 1.0]
        if not open_:
            i = min(range(len(regions)), key=lambda j: util[j])
            return error("ThrottlingException", "Too many tokens, please wait before trying again. "
                         f"(no capacity left for {base} in {', '.join(regions)})",
                         served_region=regions[i], quota=quota_value("capacity", regions))
        cross = self.config.latency.cross_region_s
        i = min(open_, key=lambda j: (self._queue_s(util[j]) + (cross if regions[j] != src else 0.0),
                                      util[j]))
        return regions[i], util[i]

    # -- the calls -------------------------------------------------------------

    def count_tokens(self, model_id: str, body: Any) -> int | BedrockError:
        """CountTokens (POST /model/{modelId}/count-tokens): input tokens of the body's
        converse or invokeModel input, counted at `self.chars_per_token` characters per token
        (loadgen's rule unless a test stands in a different tokenizer). Free and outside the
        quotas ("Using the CountTokens API doesn't incur charges", count-tokens.html; that it
        takes no TPM is an ASSUMPTION). Models without models.toml `count_tokens` get a
        ValidationException whose text is the emulator's (Bedrock's is UNSOURCED). Any id
        form of a catalogued model is accepted (whether Bedrock takes profile ids here is
        UNSOURCED)."""
        try:
            info = lookup(resolve_model_id(model_id))
        except UnknownModel:
            return _with_region(validation(f"The provided model identifier is invalid. ({model_id!r} is not in "
                                           "the emulator's model catalog)"), self.region)
        if not info.count_tokens:
            return _with_region(validation(f"The provided model doesn't support counting tokens. ({info.name}: "
                                           "models.toml count_tokens; emulator wording)"), self.region)
        cpt = self.chars_per_token
        r = count_input(body, info, lambda text: -(-len(text) // cpt))
        return _with_region(r, self.region) if isinstance(r, BedrockError) else r


    def begin(self, model_id: str, body: dict, *, stream: bool, region: str | None = None) -> Plan | BedrockError:
        """Decide one request arriving now (clock.now()). See the module doc for the order.
        `region`: the caller's Region (Bedrock's endpoint is per Region; the server reads it
        from the request's SigV4 credential scope); None = the emulator's own Region."""
        now = self.clock.now()
        src = region or self.region
        cfg, rng = self.config, self.rng
        r = self._resolve(model_id, src)
        if isinstance(r, BedrockError):
            return _with_region(r, src)
        mid, info = r
        req = parse(body, info, cfg.default_max_tokens)
        if isinstance(req, BedrockError):
            return _with_region(req, src)

        if cfg.faults.error_rates:
            x = rng.random()
            for code, p in cfg.faults.error_rates:
                if x < p:
                    return error(code, _FAULT_MESSAGES.get(code, "Injected fault."), served_region=src)
                x -= p

        # quota of (model id as called, caller Region)
        kind = profiles.kind_of(mid)
        limit = cfg.limit_for(mid, kind)
        qkey = (mid, src)
        reserve = req.input_tokens + req.max_tokens
        if limit.rpm:
            rw = self._window(self._rpm, qkey)
            if rw.total(now) + 1 > limit.rpm:
                return error("ThrottlingException", "Too many requests, please wait before trying again.",
                             served_region=src, quota=quota_value("rpm", (src,)))
        dw = self._window(self._tpd, qkey, DAY_S) if limit.tpd else None
        if dw is not None and dw.total(now) + reserve > limit.tpd:
            # Bedrock's text: minorun365/agent-book#29 (emulator.toml, quotas.tpd)
            return error("ThrottlingException", "Too many tokens per day, please wait before trying again.",
                         served_region=src, quota=quota_value("tpd", (src,)))
        tw = self._window(self._tpm, qkey) if limit.tpm else None
        tier = req.service_tier or "default"
        if tw is not None and tw.total(now) + reserve > limit.tpm * (FLEX_QUOTA_SHARE if tier == "flex" else 1.0):
            return error("ThrottlingException", "Too many tokens, please wait before trying again.",
                         served_region=src, quota=quota_value("tpm", (src,)))

        routed = self._route(mid, info.base_id, reserve, now, src)
        if isinstance(routed, BedrockError):
            return routed
        served, util = routed

        brown = self._brownout(served, now)
        if brown is not None and rng.random() < brown.error_rate:
            return error(brown.code, f"{_FAULT_MESSAGES.get(brown.code, 'Injected fault.')} "
                         f"(brown-out in {served})", served_region=served)

        # charges (corrected by finish)
        if limit.rpm:
            self._window(self._rpm, qkey).add(now, 1)
        qc = tw.add(now, reserve) if tw is not None else None
        dc = dw.add(now, reserve) if dw is not None else None
        lw = self._window(self._load, (info.base_id, served)) if cfg.region_capacity_tpm else None
        lc = lw.add(now, reserve) if lw is not None else None

        # prompt cache
        cache_region = served if cfg.cache_scope == "region" else f"{kind}:{mid}:{src}"
        min_tokens = info.cache_min_tokens
        valid = [c for c in req.checkpoints if c.tokens >= min_tokens]
        keys = [(info.base_id, cache_region, c.digest) for c in valid]
        # The longest prefix an earlier request wrote, looked up per breakpoint from the
        # last: the breakpoint itself, then the earlier positions of its lookback window,
        # nearest first (models.toml cache_lookback_blocks; Anthropic's "How automatic
        # prefix checking works"). `hit`: the last breakpoint at or below the prefix read,
        # so the ones after it are written; `found`: a prefix found by the lookback.
        hit = -1
        read = 0
        found = None
        for i in range(len(valid) - 1, -1, -1):
            if self.cache.alive(keys[i], now):
                hit, read = i, valid[i].tokens
                break
            for tokens, h in valid[i].lookback:
                if tokens < min_tokens:
                    break  # shorter still from here on: nothing was cached there
                k = (info.base_id, cache_region, h.digest())
                if self.cache.alive(k, now):
                    found, read = k, tokens
                    break
            if found is not None:
                hit = i - 1
                break
        details: dict[str, int] = {}
        prev = read
        for c in valid[hit + 1:]:
            if c.tokens > prev:
                details[c.ttl] = details.get(c.ttl, 0) + c.tokens - prev
                prev = c.tokens
        write = prev - read
        usage_in = req.input_tokens - read - write

        # output
        if req.reply_hint is not None:
            wanted = req.reply_hint
        else:
            wanted = max(1, int(round(self._lognormal(cfg.output_median, self._out_sigma))))
        n = min(wanted, req.max_tokens)
        stop_reason = "max_tokens" if wanted > req.max_tokens else "end_turn"
        text = _FILLER[: n * CHARS_PER_TOKEN]
        if req.stop_sequences:
            cut = min((i for i in (text.find(s) for s in req.stop_sequences) if i >= 0), default=-1)
            if cut >= 0:
                text, stop_reason = text[:cut], "stop_sequence"
                n = -(-len(text) // CHARS_PER_TOKEN)
        tool = None
        if req.forced_tool is not None:
            # a forced toolChoice: one toolUse block and no text, stopReason tool_use (botocore
            # StopReason; no verbatim Bedrock response seen). Its input is TOOL_INPUT.
            tool = (f"tooluse_{self._ids.getrandbits(64):016x}", req.forced_tool)
            text, n, stop_reason = "", count_tokens(TOOL_INPUT), "tool_use"
        usage = Usage(usage_in, n, read, write,
                      tuple(sorted(details.items(), key=lambda kv: -TTL_SECONDS[kv[0]])))

        # latency
        lat = cfg.latency
        ttft = self._lognormal(lat.ttft_s, lat.ttft_sigma)
        ttft += (usage_in + write) / 1000.0 * lat.prefill_s_per_1k + read / 1000.0 * lat.cache_read_s_per_1k
        ttft += self._queue_s(util) * TIER_QUEUE_FACTOR[tier]
        if served != src:
            ttft += lat.cross_region_s
        if brown is not None:
            ttft += brown.extra_latency_s
        tps = self._lognormal(lat.tokens_per_s, lat.tokens_per_s_sigma) if lat.tokens_per_s > 0 else 0.0
        if tier == "priority":
            tps *= PRIORITY_TPS_GAIN
        f = cfg.faults
        if f.slow_stream_rate and rng.random() < f.slow_stream_rate:
            tps = tps / f.slow_stream_factor if tps > 0 else f.slow_stream_factor / max(1, n)
            ttft *= f.slow_stream_factor
        duration = ttft + ((n - 1) / tps if tps > 0 and n > 1 else 0.0)

        # cache bookkeeping: hits refresh; writes readable from this request's first token
        for i in range(hit + 1):
            if self.cache.alive(keys[i], now):
                self.cache.touch(keys[i], now)
        if found is not None:
            self.cache.touch(found, now)
        for c, k in zip(valid[hit + 1:], keys[hit + 1:]):
            self.cache.write(k, now, TTL_SECONDS[c.ttl], now + ttft)

        # faults during the response
        fault = None
        n_deltas = -(-len(text) // (cfg.stream_chunk_tokens * CHARS_PER_TOKEN))
        if tool is not None:
            pass  # ASSUMPTION: a forced tool call is one event; response faults are not drawn
        elif f.connection_reset_rate and rng.random() < f.connection_reset_rate:
            fault = StreamFault("reset", min(1, n_deltas) if stream else 0)
        elif stream and f.mid_stream_rate and rng.random() < f.mid_stream_rate:
            fault = StreamFault("exception", rng.randint(min(1, n_deltas), max(1, n_deltas)),
                                f.mid_stream_code, _FAULT_MESSAGES.get(f.mid_stream_code, "Injected fault."))

        rid = self._request_id()
        self._open[rid] = _Open(qc, lc, tw, lw, info.output_burndown, dc, dw)
        return Plan(request_id=rid, model_id=model_id, base_id=info.base_id, stream=stream,
                    source_region=src, served_region=served, start=now, usage=usage, text=text,
                    stop_reason=stop_reason, ttft_s=ttft, tokens_per_s=tps, duration_s=duration,
                    chunk_tokens=cfg.stream_chunk_tokens, fault=fault, tool_use=tool,
                    service_tier=req.service_tier)

    def finish(self, plan: Plan, *, output_tokens: int | None = None) -> int:
        """Correct the request's quota charge to input + cache writes + output x burndown
        (cache reads do not count). `output_tokens` overrides the plan's count when the
        response was cut short. Returns the final charge (tokens); idempotent."""
        o = self._open.pop(plan.request_id, None)
        out = plan.usage.output_tokens if output_tokens is None else output_tokens
        final = plan.usage.input_tokens + plan.usage.cache_write + int(math.ceil(out * (o.burndown if o else 1)))
        if o is not None:
            if o.quota is not None:
                o.quota_window.correct(o.quota, final)
            if o.load is not None:
                o.load_window.correct(o.load, final)
            if o.day is not None:
                o.day_window.correct(o.day, final)
        return final

    def quota_used(self, model_id: str) -> float:
        """Tokens charged now in the TPM window of a model id as called (for tests, reports)."""
        w = self._tpm.get((resolve_model_id(model_id), self.region))
        return w.total(self.clock.now()) if w else 0.0


def _with_region(e: BedrockError, region: str) -> BedrockError:
    return BedrockError(e.status, e.code, e.message, e.delay_s, e.served_region or region)


_FAULT_MESSAGES = {
    "InternalServerException": "The server encountered an internal error while processing the request.",
    "ServiceUnavailableException": "The service is temporarily unable to handle the request. Try again later.",
    "ModelNotReadyException": "The model is not ready to serve inference requests. Try again later.",
    "ModelErrorException": "The model returned an error while processing the request.",
    "ModelTimeoutException": "The request took too long to process. Processing time exceeded the model timeout length.",
    "modelStreamErrorException": "The model stream was interrupted. Retry your request.",
    "internalServerException": "The server encountered an internal error while streaming the response.",
    "serviceUnavailableException": "The service is temporarily unable to continue the stream.",
    "throttlingException": "Too many tokens, please wait before trying again.",
}
