"""Parse and validate a Converse request body the way Bedrock does, and measure it:
token counts per block, the cache checkpoints with a digest of the exact prefix bytes
before each, the output cap and hints.

Token counting (docs/emulator.md): loadgen.catalog.tokens.count_tokens per text block (system
text, message text); every other block (tool specs, images, tool use/results, ...) counts
as the count_tokens of its canonical JSON (sorted keys, no spaces). Prefix order is
Converse's: tools -> system -> messages.

Content-block positions (for the cache lookback, docs/emulator.md "Prompt cache"): every
block of toolConfig.tools, of system and of each message's content counts as one
position, in that order; cachePoint blocks are markers and count as none. Position k is
the prefix ending with the k-th block. A cachePoint after block k is a breakpoint at
position k; Bedrock checks it and up to `cache_lookback_blocks - 1` earlier positions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import deque
from typing import Any, Callable, NamedTuple

from loadgen.catalog.models import TTL_SECONDS
from loadgen.emulator.errors import BedrockError, validation
from loadgen.emulator.reply_hint import reply_hint
from loadgen.catalog.models import ModelInfo
from loadgen.catalog.tokens import count_tokens



# CheckpointAt and ParsedRequest are NamedTuples, not frozen dataclasses: as immutable, and
# built in one C call where a frozen dataclass sets each field through object.__setattr__
# (the emulator makes several per request; `loadgen simulate` runs tens of thousands a second).
class CheckpointAt(NamedTuple):
    tokens: int       # prefix tokens before this cachePoint
    digest: bytes     # digest of the canonical prefix bytes before it
    ttl: str          # "5m" | "1h"
    # the earlier positions inside this breakpoint's lookback window, nearest first:
    # (prefix tokens, hash object whose digest() keys that prefix). Digests are taken
    # only on a lookup that needs them (most lookups hit the breakpoint itself).
    lookback: tuple[tuple[int, Any], ...] = ()


class ParsedRequest(NamedTuple):
    input_tokens: int                  # all input tokens (cached or not)
    checkpoints: tuple[CheckpointAt, ...]
    max_tokens: int
    stop_sequences: tuple[str, ...]
    reply_hint: int | None             # "Reply with about N tokens" in the last user message
    forced_tool: str | None = None     # the tool a toolChoice of `tool` or `any` makes the model call
    service_tier: str | None = None    # serviceTier.type as sent (None: not sent, served at default)


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# first text block (with count_tokens) -> (SHA-256 state after it, its tokens); see
# _Prefix._first_text. Texts under _MEMO_MIN_CHARS are cheaper to hash than to look up.
_FIRST_TEXT: dict[str, tuple[Any, int]] = {}
_MEMO_MIN_CHARS = 1024
_MEMO_ENTRIES = 64  # distinct system prompts kept (one per arm in a run); cleared when full


class _Prefix:
    """Running token count and digest over the prefix blocks seen so far."""

    def __init__(self, info: ModelInfo, count: Callable[[str], int] = count_tokens) -> None:
        self.info = info
        self.count = count
        self.tokens = 0
        self.h = hashlib.sha256()  # hardware-accelerated on most CPUs: the fastest stdlib hash here
        self.points: list[CheckpointAt] = []
        # the positions before the current one inside a lookback window, oldest first:
        # (tokens, hash copy); None when the model has no lookback (nothing to keep)
        n = info.cache_lookback_blocks - 1
        self.window: deque | None = deque(maxlen=n) if n > 0 else None
        self.marker = b""  # a message's role marker, hashed with its first block
        self.fresh = True  # nothing hashed yet (the state _FIRST_TEXT memoises from)

    def block(self, where: str, b: Any) -> None:
        if not isinstance(b, dict) or len(b) != 1:
            raise _Invalid(f"{where}: each content block must be an object with exactly one member "
                           f"(text, image, toolUse, toolResult, cachePoint, ...), got {_short(b)}")
        (kind, val), = b.items()
        if kind == "cachePoint":
            self.cache_point(where, val)
            return
        if self.window is not None and self.tokens:
            # the position this block ends is a new one: the current one joins the window
            # (an empty prefix is no position anything can be cached at)
            self.window.append((self.tokens, self.h.copy()))
        if self.marker:
            # the role marker belongs to the message's first block, so the position that
            # ends the previous message has the same digest whatever follows it
            self.h.update(self.marker)
            self.marker = b""
        if kind == "text":
            if not isinstance(val, str):
                raise _Invalid(f"{where}.text: expected a string")
            if not val:
                # Bedrock's wording (seen in client issue trackers quoting the
                # ValidationException), with its dotted path: messages.0.content.0
                raise _Invalid(f"The text field in the ContentBlock object at {_dotted(where)} is blank. "
                               "Add text to the text field, and try again.")
            if self.fresh and not self.marker and len(val) >= _MEMO_MIN_CHARS and self.count is count_tokens:
                self._first_text(val)
                return
            raw = val.encode()
            self.tokens += self.count(val)
        else:
            raw = _canon(b)
            self.tokens += self.count(raw.decode())
        self.h.update(kind.encode() + b"\x00" + len(raw).to_bytes(8, "big"))
        self.h.update(raw)
        self.fresh = False

    def _first_text(self, val: str) -> None:
        """The first block, a long text: its digest state and tokens from _FIRST_TEXT.
        Every request of an arm starts with the same system prompt (loadgen's prefix:
        ~20 KB whose encode + SHA-256 cost ~12 us a request), so it is hashed once."""
        memo = _FIRST_TEXT.get(val)
        if memo is None:
            raw = val.encode()
            h = hashlib.sha256(b"text\x00" + len(raw).to_bytes(8, "big"))
            h.update(raw)
            if len(_FIRST_TEXT) >= _MEMO_ENTRIES:
                _FIRST_TEXT.clear()
            memo = _FIRST_TEXT[val] = (h, count_tokens(val))
        self.h = memo[0].copy()
        self.tokens += memo[1]
        self.fresh = False

    def cache_point(self, where: str, cp: Any) -> None:
        if not isinstance(cp, dict) or cp.get("type") != "default":
            raise _Invalid(f"{where}.cachePoint: expected {{\"type\": \"default\"}} (optionally with \"ttl\")")
        extra = set(cp) - {"type", "ttl"}
        if extra:
            raise _Invalid(f"{where}.cachePoint: unknown member(s) {sorted(extra)}")
        ttl = cp.get("ttl", "5m")
        if ttl not in TTL_SECONDS:
            raise _Invalid(f"{where}.cachePoint.ttl: expected one of 5m, 1h, got {ttl!r}")
        if ttl not in self.info.cache_ttls:
            raise _Invalid(f"cachePoint ttl {ttl!r} is not supported by model {self.info.base_id} "
                           f"({self.info.name}); supported: {', '.join(self.info.cache_ttls)}")
        if ttl == "1h" and any(p.ttl == "5m" for p in self.points):
            raise _Invalid("a cachePoint with ttl 1h must not follow one with ttl 5m "
                           "(longer TTLs must come first)")
        lookback = tuple(reversed(self.window)) if self.window else ()
        self.points.append(CheckpointAt(self.tokens, self.h.copy().digest(), ttl, lookback))

    def check_count(self) -> None:
        """Too many cachePoints, counted over the whole request. Bedrock's text is unsourced:
        this is Anthropic's ("A maximum of 4 blocks with cache_control may be provided.
        Found 5.", tghamm/Anthropic.SDK#50) wrapped as Bedrock wraps Claude's errors ("The
        model returned the following errors: ..."), an assumption (docs/emulator.md)."""
        n, most = len(self.points), self.info.max_cache_checkpoints
        if n > most:
            raise _Invalid(f"The model returned the following errors: A maximum of {most} blocks with "
                           f"cache_control may be provided. Found {n}.")


class _Invalid(Exception):
    pass


def _dotted(where: str) -> str:
    """messages[0].content[1] -> messages.0.content.1 (how Bedrock names a block)."""
    return re.sub(r"\[(\d+)\]", r".\1", where)


def _unit_interval(ic: dict, key: str) -> None:
    """temperature / topP: Converse's InferenceConfiguration shape allows 0..1 (botocore
    service model: min 0, max 1); botocore checks only the minimum client-side, Bedrock
    rejects both ends. Message format as Bedrock sends it (quoted from a live call in
    stdapi-ai/stdapi.ai#224)."""
    if key not in ic:
        return
    v = ic[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Invalid(f"inferenceConfig.{key}: expected a number between 0 and 1, got {v!r}")
    if v > 1:
        raise _Invalid(f"Value '{v}' at 'inferenceConfig.{key}' failed to satisfy constraint: "
                       "Member must have value less than or equal to 1")
    if v < 0:
        raise _Invalid(f"Value '{v}' at 'inferenceConfig.{key}' failed to satisfy constraint: "
                       "Member must have value greater than or equal to 0")


def _short(x: Any) -> str:
    s = repr(x)
    return s if len(s) <= 80 else s[:77] + "..."


def parse(body: Any, info: ModelInfo, default_max_tokens: int | None = None) -> ParsedRequest | BedrockError:
    """A ParsedRequest, or the ValidationException Bedrock would return.

    A request without inferenceConfig.maxTokens gets the model's maximum output
    (botocore InferenceConfiguration.maxTokens: "The default value is the maximum allowed
    value for the model that you are using"), so its quota reservation is input + that
    maximum. `default_max_tokens` (tokens) overrides it when the emulator config sets one.
    """
    try:
        return _parse(body, info, default_max_tokens)
    except _Invalid as e:
        return validation(str(e))


def too_long(info: ModelInfo, input_tokens: int) -> str | None:
    """Bedrock's ValidationException text for a prompt above the model's context window
    (None when it fits). Two texts are seen from Bedrock: Claude models, through the
    Anthropic runtime, "The model returned the following errors: prompt is too long: 200049
    tokens > 200000 maximum" (daisuke-awaji/moca#254, 2026-03-09); other models "Input is too
    long for requested model." (aws-samples/assessment-generator#2). Which family gets which
    is loadgen's reading of those reports (an assumption, docs/emulator.md)."""
    if input_tokens <= info.context_window:
        return None
    if info.family == "claude":
        return (f"The model returned the following errors: prompt is too long: {input_tokens} tokens > "
                f"{info.context_window} maximum")
    return "Input is too long for requested model."


# botocore bedrock-runtime service-2.json ServiceTierType (botocore >= 1.41.5 has "reserved").
SERVICE_TIER_TYPES = ("priority", "default", "flex", "reserved")


def _service_tier(body: dict, info: ModelInfo) -> str | None:
    """serviceTier.type, checked as Bedrock checks it (docs/emulator.md, service tiers).

    Unknown value: "service tier provided is invalid"; `reserved` without a reservation
    (the emulator has none): "Reservation not found." (both ValidationException, seen in
    NousResearch/hermes-agent#34476; the second also in envoyproxy/ai-gateway#1749). A valid
    tier the model does not offer (models.toml service_tiers) is a ValidationException per
    strands-agents/harness-sdk#1799, but its text is UNSOURCED: the emulator's own wording.
    """
    st = body.get("serviceTier")
    if st is None:
        return None
    tier = st.get("type") if isinstance(st, dict) else None
    if tier not in SERVICE_TIER_TYPES:
        raise _Invalid("service tier provided is invalid")
    if tier not in info.service_tiers:
        raise _Invalid(f"The model {info.base_id} does not support the {tier} service tier. "
                       f"(emulator wording; tiers offered: {', '.join(info.service_tiers)})")
    if tier == "reserved":
        raise _Invalid("Reservation not found.")
    return tier


def count_input(body: Any, info: ModelInfo, count: Callable[[str], int] = count_tokens) -> int | BedrockError:
    """CountTokens: the input tokens of `{"input": {"converse": {...}}}` or
    `{"input": {"invokeModel": {"body": <bytes as base64>}}}` (botocore CountTokensInput, a
    union), or the ValidationException. A converse input is counted exactly as Converse
    counts it (so the count "will match the token count that would be charged",
    count-tokens.html); an invokeModel body is counted as one text of its decoded bytes
    (the emulator's rule: it does not model each provider's native body)."""
    inp = body.get("input") if isinstance(body, dict) else None
    if not isinstance(inp, dict) or len(inp) != 1 or next(iter(inp)) not in ("converse", "invokeModel"):
        return validation("input: expected exactly one of converse, invokeModel")
    (kind, val), = inp.items()
    if not isinstance(val, dict):
        return validation(f"input.{kind}: expected an object")
    if kind == "invokeModel":
        try:
            raw = base64.b64decode(val.get("body", ""), validate=True).decode()
        except (ValueError, TypeError):
            return validation("input.invokeModel.body: expected base64-encoded UTF-8 bytes")
        if not raw:
            return validation("input.invokeModel.body: must not be empty")
        return count(raw)
    extra = set(val) - {"messages", "system", "toolConfig", "additionalModelRequestFields"}
    if extra:
        return validation(f"input.converse: unknown member(s) {sorted(extra)}")
    try:
        return _parse({k: v for k, v in val.items() if k != "additionalModelRequestFields"}, info, None, count).input_tokens
    except _Invalid as e:
        return validation(str(e))


def _parse(body: Any, info: ModelInfo, default_max_tokens: int | None,
           count: Callable[[str], int] = count_tokens) -> ParsedRequest:
    if not isinstance(body, dict):
        raise _Invalid("the request body must be a JSON object")
    tier = _service_tier(body, info)
    p = _Prefix(info, count)

    tc = body.get("toolConfig")
    if tc is not None:
        tools = tc.get("tools") if isinstance(tc, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _Invalid("toolConfig.tools: expected a non-empty list")
        for i, t in enumerate(tools):
            p.block(f"toolConfig.tools[{i}]", t)
        forced = _forced_tool(tc.get("toolChoice"), tools)
    else:
        forced = None

    system = body.get("system", [])
    if not isinstance(system, list):
        raise _Invalid("system: expected a list of content blocks")
    for i, b in enumerate(system):
        p.block(f"system[{i}]", b)

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Invalid("messages: at least one message is required")
    last_user_text = ""
    prev_role = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _Invalid(f"messages[{i}]: expected an object with role and content")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise _Invalid(f"messages[{i}].role: expected 'user' or 'assistant', got {role!r}")
        if i == 0 and role != "user":
            raise _Invalid("A conversation must start with a user message. Try again with a "
                           "conversation that starts with a user message.")
        if role == prev_role:
            # Bedrock's text (langchain-ai/langchain-aws#130, microsoft/semantic-kernel#10281)
            raise _Invalid("A conversation must alternate between user and assistant roles. Make sure "
                           "the conversation alternates between user and assistant roles and try again.")
        prev_role = role
        content = m.get("content")
        if not isinstance(content, list) or not content:
            raise _Invalid(f"messages[{i}].content: expected a non-empty list of content blocks")
        p.marker = b"\x01" + role.encode()
        texts = []
        for j, b in enumerate(content):
            p.block(f"messages[{i}].content[{j}]", b)
            if role == "user" and isinstance(b, dict) and "text" in b:
                texts.append(b["text"])
        if role == "user":
            last_user_text = " ".join(texts)

    p.check_count()
    ic = body.get("inferenceConfig") or {}
    if not isinstance(ic, dict):
        raise _Invalid("inferenceConfig: expected an object")
    max_tokens = ic.get("maxTokens", min(default_max_tokens or info.max_output_tokens, info.max_output_tokens))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _Invalid(f"inferenceConfig.maxTokens: expected an integer >= 1, got {max_tokens!r}")
    if max_tokens > info.max_output_tokens:
        raise _Invalid(f"The maximum tokens you requested exceeds the model limit of "
                       f"{info.max_output_tokens}. Try again with a maximum tokens value that is "
                       f"lower than {info.max_output_tokens}.")
    _unit_interval(ic, "temperature")
    _unit_interval(ic, "topP")
    stops = ic.get("stopSequences", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _Invalid("inferenceConfig.stopSequences: expected a list of non-empty strings")
    long = too_long(info, p.tokens)
    if long is not None:
        raise _Invalid(long)
    hint = reply_hint(last_user_text)
    return ParsedRequest(
        input_tokens=p.tokens,
        checkpoints=tuple(p.points),
        max_tokens=max_tokens,
        stop_sequences=tuple(stops),
        reply_hint=int(hint.group(1)) if hint else None,
        forced_tool=forced,
        service_tier=tier,
    )


def _forced_tool(choice: Any, tools: list) -> str | None:
    """The tool a toolChoice forces (botocore ToolChoice: `tool` "The Model must request the
    specified tool", `any` "must request at least one tool (no text is generated)": the
    emulator picks the first), or None for `auto` / no choice. The text for a name that is
    not among the tools is the emulator's (unsourced)."""
    if choice is None or choice == {"auto": {}}:
        return None
    names = [t["toolSpec"].get("name") for t in tools if isinstance(t.get("toolSpec"), dict)]
    if isinstance(choice, dict) and "any" in choice and len(choice) == 1:
        if not names:
            raise _Invalid("toolConfig.toolChoice: any needs at least one toolSpec in toolConfig.tools")
        return names[0]
    if isinstance(choice, dict) and isinstance(choice.get("tool"), dict) and len(choice) == 1:
        name = choice["tool"].get("name")
        if name not in names:
            raise _Invalid(f"toolConfig.toolChoice.tool.name: {name!r} is not a toolSpec in toolConfig.tools")
        return name
    raise _Invalid(f"toolConfig.toolChoice: expected one of auto, any, tool, got {_short(choice)}")
