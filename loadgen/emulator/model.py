"""EmulatorModel: Bedrock's behaviour as pure computation on an injected clock and rng.

No sockets and no sleeping: `begin()` decides everything about one request at its
start (validation, routing, quotas, prompt cache, usage, output text, faults, and the
timing schedule in scenario seconds relative to the start), and returns a Plan the
caller paces (the HTTP server with clock.sleep_until, or a virtual-time simulator).
`finish()` corrects the quota charge once the request is over.

Order of decisions for one request (each step can end it with a BedrockError):
  1. model id (bare, geo, global, or inference-profile ARN; routing.resolve) and body
     validation (request.parse)
  2. injected faults drawn by rate (5xx, ModelNotReady, ...)
  3. quota of (model id as called, caller Region) (quotas.py): RPM and TPM in a 60-s
     window, TPD (off unless configured) in a day; reservation = all input tokens + maxTokens
  4. routing to a serving Region (source preference, spill-over, brown-outs; routing.py),
     whose own capacity can throttle
  5. prompt cache in the cache Region: longest live prefix read (at a checkpoint or, for
     models with a lookback, an earlier block position near one), the rest written
  6. output length, text, stop reason; latency; mid-stream faults
The result is a Plan (plan.py).

The random draws (faults, output length, latency) come from the shared `rng` in arrival
order, or, for a request that names itself (`draw_key`: loadgen names each attempt), from
that name: the same attempt draws the same in every arm and run (draws.py).
"""

from __future__ import annotations

import math
import random
from typing import Any, NamedTuple

from loadgen.catalog import profiles
from loadgen.catalog.models import TTL_SECONDS, UnknownModel, lookup
from loadgen.catalog.tokens import CHARS_PER_TOKEN, count_tokens
from loadgen.emulator.cache import PromptCache
from loadgen.emulator import draws as slot
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.draws import KeyedDraws, StreamDraws, keyed_hash
from loadgen.emulator.errors import BedrockError, error, validation
from loadgen.emulator.ids import uuid4_text
from loadgen.emulator.plan import TOOL_INPUT, Plan, StreamFault, Usage
from loadgen.emulator.quotas import Quotas
from loadgen.emulator.request import count_input, parse
from loadgen.emulator.routing import Regions, resolve, resolve_model_id
from loadgen.emulator.tiers import PRIORITY_TPS_GAIN, TIER_QUEUE_FACTOR
from loadgen.emulator.window import Charge, Window
from loadgen.scenario.distributions import Z90

__all__ = ["EmulatorModel", "Plan"]


# Cheap deterministic output text; no stop sequence a user is likely to set occurs in it
# by accident except plain words. Sliced to length, so count_tokens(text) == tokens.
_SENTENCE = "The emulator streams this filler text so that clients receive the requested length. "
_FILLER = _SENTENCE * (64_000 * CHARS_PER_TOKEN // len(_SENTENCE) + 2)


class _Open(NamedTuple):
    """A request in flight: its token charges (quota and Region load), corrected by finish()."""

    charges: list[tuple[Window, Charge]]
    burndown: float


class EmulatorModel:
    def __init__(self, config: EmulatorConfig, *, clock: Any, rng: random.Random,
                 region: str = "us-east-1", draw_seed: str | None = None) -> None:
        """`rng`: the shared stream (request ids, and the draws of requests without a
        `draw_key`); `draw_seed`: what keyed draws derive from (run and simulate pass the
        same, from the scenario's seed, so they draw alike). None: from `rng`'s state, read
        without drawing from it, so models seeded apart draw apart for keyed requests too."""
        if draw_seed is None:
            draw_seed = "rng-state:" + ",".join(map(str, rng.getstate()[1]))  # the Mersenne Twister's words
        self.config = config
        self.clock = clock
        self.rng = rng
        self.region = region
        self._ids = random.Random(rng.getrandbits(64))  # separate stream: ids don't shift draws
        self._shared = StreamDraws(rng)
        self._draw_seed = keyed_hash(draw_seed)
        self.cache = PromptCache(config.cache_max_entries)
        self.quotas = Quotas(config)
        self.regions = Regions(config)
        self._open: dict[str, _Open] = {}
        # (model id, caller Region) -> (id without ARN, catalog entry, profile kind, quota,
        # whether that quota limits anything):
        # fixed by the catalog and config, and worked out once instead of per request
        self._resolved: dict[tuple[str, str], tuple[str, Any, str, Any, bool]] = {}
        self._out_sigma = math.log(config.output_p90 / config.output_median) / Z90
        # characters per token of the CountTokens route; tests set another value to stand in
        # for a real tokenizer that disagrees with loadgen's chars/4 rule
        self.chars_per_token = CHARS_PER_TOKEN

    # -- helpers ---------------------------------------------------------------

    def _request_id(self) -> str:
        return uuid4_text(self._ids.getrandbits(128))

    @staticmethod
    def _lognormal(median: float, sigma: float, d: StreamDraws | KeyedDraws, at: int) -> float:
        if sigma <= 0 or median <= 0:
            return median
        return median * math.exp(sigma * d.normal(at))

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

    def begin(self, model_id: str, body: dict, *, stream: bool, region: str | None = None,
              draw_key: str | None = None) -> Plan | BedrockError:
        """Decide one request arriving now (clock.now()). See the module doc for the order.
        `region`: the caller's Region (Bedrock's endpoint is per Region; the server reads it
        from the request's SigV4 credential scope); None = the emulator's own Region.
        `draw_key`: the attempt's name for its own draws (draws.py); None: the shared stream."""
        now = self.clock.now()
        src = region or self.region
        cfg = self.config
        d = self._shared if draw_key is None else KeyedDraws(self._draw_seed, draw_key)
        known = self._resolved.get((model_id, src))
        if known is None:
            r = resolve(model_id, src)
            if isinstance(r, BedrockError):
                return _with_region(r, src)
            mid, info = r
            kind = profiles.kind_of(mid)
            limit = cfg.limit_for(mid, kind)
            known = self._resolved[(model_id, src)] = (mid, info, kind, limit,
                                                       bool(limit.rpm or limit.tpm or limit.tpd))
        mid, info, kind, limit, limited = known
        req = parse(body, info, cfg.default_max_tokens)
        if isinstance(req, BedrockError):
            return _with_region(req, src)

        if cfg.faults.error_rates:
            x = d.u(slot.FAULT)
            for code, p in cfg.faults.error_rates:
                if x < p:
                    return error(code, _FAULT_MESSAGES.get(code, "Injected fault."), served_region=src)
                x -= p

        # quota of (model id as called, caller Region)
        qkey = (mid, src)
        reserve = req.input_tokens + req.max_tokens
        tier = req.service_tier or "default"
        if limited:  # (a limit of 0 is none: no check, no charge)
            refused = self.quotas.check(limit, qkey, reserve, tier, now)
            if refused is not None:
                return refused

        routed = self.regions.route(mid, info.base_id, reserve, now, src)
        if isinstance(routed, BedrockError):
            return routed
        served, util = routed

        brown = self.regions.brownout(served, now) if cfg.faults.brownouts else None
        if brown is not None and d.u(slot.BROWNOUT) < brown.error_rate:
            return error(brown.code, f"{_FAULT_MESSAGES.get(brown.code, 'Injected fault.')} "
                         f"(brown-out in {served})", served_region=served)

        # charges (corrected by finish)
        charges = self.quotas.charge(limit, qkey, reserve, now) if limited else []
        charges += self.regions.charge(info.base_id, served, reserve, now)

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
                # the window can reach past earlier breakpoints: every breakpoint longer than
                # the prefix found is written (docs/emulator.md: "the request's own
                # checkpoints are written"), not only the ones after valid[i - 1]
                hit = i - 1
                while hit >= 0 and valid[hit].tokens > read:
                    hit -= 1
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
            wanted = max(1, int(round(self._lognormal(cfg.output_median, self._out_sigma, d, slot.OUTPUT))))
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
                      tuple(sorted(details.items(), key=lambda kv: -TTL_SECONDS[kv[0]])) if len(details) > 1
                      else tuple(details.items()))

        # latency
        lat = cfg.latency
        ttft = self._lognormal(lat.ttft_s, lat.ttft_sigma, d, slot.TTFT)
        ttft += (usage_in + write) / 1000.0 * lat.prefill_s_per_1k + read / 1000.0 * lat.cache_read_s_per_1k
        ttft += self.regions.queue_s(util) * TIER_QUEUE_FACTOR[tier]
        if served != src:
            ttft += lat.cross_region_s
        if brown is not None:
            ttft += brown.extra_latency_s
        tps = self._lognormal(lat.tokens_per_s, lat.tokens_per_s_sigma, d, slot.SPEED) if lat.tokens_per_s > 0 else 0.0
        if tier == "priority":
            tps *= PRIORITY_TPS_GAIN
        f = cfg.faults
        if f.slow_stream_rate and d.u(slot.SLOW) < f.slow_stream_rate:
            tps = tps / f.slow_stream_factor if tps > 0 else f.slow_stream_factor / max(1, n)
            ttft *= f.slow_stream_factor
        duration = ttft + ((n - 1) / tps if tps > 0 and n > 1 else 0.0)

        # cache bookkeeping: hits refresh; writes readable from this request's first token
        for i in range(hit + 1):
            self.cache.touch_if_alive(keys[i], now)
        if found is not None:
            self.cache.touch(found, now)
        for c, k in zip(valid[hit + 1:], keys[hit + 1:]):
            self.cache.write(k, now, TTL_SECONDS[c.ttl], now + ttft)

        # faults during the response
        fault = None
        if tool is not None:
            pass  # ASSUMPTION: a forced tool call is one event; response faults are not drawn
        elif f.connection_reset_rate and d.u(slot.RESET) < f.connection_reset_rate:
            n_deltas = -(-len(text) // (cfg.stream_chunk_tokens * CHARS_PER_TOKEN))
            fault = StreamFault("reset", min(1, n_deltas) if stream else 0)
        elif stream and f.mid_stream_rate and d.u(slot.MID_STREAM) < f.mid_stream_rate:
            n_deltas = -(-len(text) // (cfg.stream_chunk_tokens * CHARS_PER_TOKEN))
            fault = StreamFault("exception", d.randint(slot.MID_STREAM_AT, min(1, n_deltas), max(1, n_deltas)),
                                f.mid_stream_code, _FAULT_MESSAGES.get(f.mid_stream_code, "Injected fault."))

        rid = self._request_id()
        self._open[rid] = _Open(charges, info.output_burndown)
        # positional, in Plan's field order (a NamedTuple's keyword call costs twice as much)
        return Plan(rid, model_id, info.base_id, stream, src, served, now, usage, text, stop_reason, ttft, tps,
                    duration, cfg.stream_chunk_tokens, fault, tool, req.service_tier)

    def finish(self, plan: Plan, *, output_tokens: int | None = None) -> int:
        """Correct the request's quota charge to input + cache writes + output x burndown
        (cache reads do not count). `output_tokens` overrides the plan's count when the
        response was cut short. Returns the final charge (tokens); idempotent."""
        o = self._open.pop(plan.request_id, None)
        out = plan.usage.output_tokens if output_tokens is None else output_tokens
        final = plan.usage.input_tokens + plan.usage.cache_write + int(math.ceil(out * (o.burndown if o else 1)))
        for window, charge in o.charges if o is not None else ():
            window.correct(charge, final)
        return final

    def quota_used(self, model_id: str) -> float:
        """Tokens charged now in the TPM window of a model id as called from the emulator's
        own Region (the tests' view of the reservation and its correction)."""
        return self.quotas.tpm_used((resolve_model_id(model_id), self.region), self.clock.now())


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
