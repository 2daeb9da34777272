"""Parse and validate a Converse request body the way Bedrock does, and measure it:
token counts per block, the cache checkpoints with a digest of the exact prefix bytes
before each (counted and hashed by emulator/prefix.py, whose docstring has the rules),
the output cap and hints.
"""

from __future__ import annotations

import base64
from typing import Any, Callable, NamedTuple

from loadgen.catalog.models import ModelInfo
from loadgen.catalog.tokens import count_tokens
from loadgen.emulator.errors import BedrockError, validation
from loadgen.emulator.prefix import MARKERS, BlockInvalid, CheckpointAt, Prefix, short
from loadgen.emulator.reply_hint import reply_hint


# ParsedRequest is a NamedTuple, not a frozen dataclass: as immutable, and built in one C
# call where a frozen dataclass sets each field through object.__setattr__ (`loadgen
# simulate` parses tens of thousands of requests a second).
class ParsedRequest(NamedTuple):
    input_tokens: int                  # all input tokens (cached or not)
    checkpoints: tuple[CheckpointAt, ...]
    max_tokens: int
    stop_sequences: tuple[str, ...]
    reply_hint: int | None             # "Reply with about N tokens" in the last user message
    forced_tool: str | None = None     # the tool a toolChoice of `tool` or `any` makes the model call
    service_tier: str | None = None    # serviceTier.type as sent (None: not sent, served at default)


class _Invalid(Exception):
    pass


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
    tier = _service_tier(body, info) if "serviceTier" in body else None
    p = Prefix(info, count)

    tc = body.get("toolConfig")
    if tc is not None:
        tools = tc.get("tools") if isinstance(tc, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _Invalid("toolConfig.tools: expected a non-empty list")
        for i, t in enumerate(tools):
            try:
                p.block(t)
            except BlockInvalid as e:
                raise _Invalid(e.text(f"toolConfig.tools[{i}]")) from None
        forced = _forced_tool(tc.get("toolChoice"), tools)
    else:
        forced = None

    system = body.get("system", [])
    if not isinstance(system, list):
        raise _Invalid("system: expected a list of content blocks")
    for i, b in enumerate(system):
        try:
            p.block(b)
        except BlockInvalid as e:
            raise _Invalid(e.text(f"system[{i}]")) from None

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
        p.marker = MARKERS[role]
        texts = []
        for j, b in enumerate(content):
            try:
                p.block(b)
            except BlockInvalid as e:
                raise _Invalid(e.text(f"messages[{i}].content[{j}]")) from None
            if role == "user" and "text" in b:  # b is a one-member dict: block() checked
                texts.append(b["text"])
        if role == "user":
            last_user_text = " ".join(texts)

    if len(p.points) > info.max_cache_checkpoints:
        # Too many cachePoints, counted over the whole request. Bedrock's text is unsourced:
        # this is Anthropic's ("A maximum of 4 blocks with cache_control may be provided.
        # Found 5.", tghamm/Anthropic.SDK#50) wrapped as Bedrock wraps Claude's errors ("The
        # model returned the following errors: ..."), an assumption (docs/emulator.md).
        raise _Invalid(f"The model returned the following errors: A maximum of {info.max_cache_checkpoints} "
                       f"blocks with cache_control may be provided. Found {len(p.points)}.")
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
    if "temperature" in ic:
        _unit_interval(ic, "temperature")
    if "topP" in ic:
        _unit_interval(ic, "topP")
    stops = ic.get("stopSequences", [])
    if not isinstance(stops, list) or (stops and not all(isinstance(s, str) and s for s in stops)):
        raise _Invalid("inferenceConfig.stopSequences: expected a list of non-empty strings")
    if p.tokens > info.context_window:
        raise _Invalid(too_long(info, p.tokens))
    hint = reply_hint(last_user_text)
    # positional: a NamedTuple's keyword call costs twice as much
    return ParsedRequest(p.tokens, tuple(p.points), max_tokens, tuple(stops),
                         int(hint.group(1)) if hint else None, forced, tier)


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
    raise _Invalid(f"toolConfig.toolChoice: expected one of auto, any, tool, got {short(choice)}")
