"""Batch records: one input line's modelInput as a Converse body for the emulator's model,
and the output line Bedrock writes for it.

Formats (AWS user guide batch-inference-data.md and batch-inference-results.html, stored
copies 2026-12-02):
  input   {"recordId": "...", "modelInput": {...}}; modelInput is the model's InvokeModel body
          for modelInvocationType "InvokeModel" (the default) and a Converse request body
          (no modelId) for "Converse". "If you omit the recordId field, Amazon Bedrock adds it."
  output  {"recordId", "modelInput", "modelOutput"}, or "error" in place of modelOutput:
          {"errorCode": 400, "errorMessage": "..."} (errorCode a number). modelOutput is the
          InvokeModel response body, or the Converse response body for Converse jobs.

InvokeModel bodies: the emulator understands Anthropic's Messages body (Claude models) and
translates it to Converse for its model; for other models it reads the body as Converse
(ASSUMPTION: Nova's native body is close to it; gpt-oss's is not modelled) and answers in
Converse shape.
"""

from __future__ import annotations

import json
from typing import Any

from loadgen.catalog.models import ModelInfo
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.plan import Plan

# Newer copy of the batch-inference user guide: tool calling is not supported in Converse
# batch jobs, "Records that include toolConfig fail with a 400 error" (an older copy says
# batch supports no tool calling at all: CONFLICT; the emulator follows the newer one).
# The message text is the emulator's (UNSOURCED).
TOOLS_UNSUPPORTED = "Tool use (toolConfig) is not supported in batch inference jobs."


class RecordError(Exception):
    """A record the model refuses: becomes the line's `error` (errorCode = HTTP status)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def converse_body(model_input: Any, invocation_type: str, info: ModelInfo) -> dict:
    """The Converse request the emulator's model plans for one record; RecordError if the
    record cannot be one."""
    if not isinstance(model_input, dict):
        raise RecordError(400, "modelInput: expected a JSON object")
    if invocation_type == "Converse" or info.family != "claude":
        if invocation_type == "Converse" and "toolConfig" in model_input:
            raise RecordError(400, TOOLS_UNSUPPORTED)
        body = dict(model_input)
        ic = body.get("inferenceConfig")
        if isinstance(ic, dict) and "max_new_tokens" in ic and "maxTokens" not in ic:
            # Nova's native InvokeModel name for the output cap
            body["inferenceConfig"] = {**{k: v for k, v in ic.items() if k != "max_new_tokens"},
                                       "maxTokens": ic["max_new_tokens"]}
        return body
    return _from_anthropic(model_input)


def _anthropic_blocks(where: str, content: Any) -> list[dict]:
    """Anthropic content (a string or a list of typed blocks, `cache_control` marking a
    cache breakpoint after the block) as Converse content blocks with cachePoints."""
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise RecordError(400, f"{where}: expected a string or a list of content blocks")
    out: list[dict] = []
    for i, b in enumerate(content):
        if not isinstance(b, dict) or "type" not in b:
            raise RecordError(400, f"{where}.{i}.type: Field required")
        if b["type"] == "text":
            out.append({"text": b.get("text", "")})
        else:
            # counted as the JSON of the block, as Converse counts non-text blocks
            out.append({b["type"]: {k: v for k, v in b.items() if k not in ("type", "cache_control")}})
        cc = b.get("cache_control")
        if cc is not None:
            ttl = cc.get("ttl") if isinstance(cc, dict) else None
            out.append({"cachePoint": {"type": "default", **({"ttl": ttl} if ttl else {})}})
    return out


def _from_anthropic(body: dict) -> dict:
    # Anthropic Messages API on Bedrock: anthropic_version and max_tokens are required
    # (Anthropic's error texts, "<field>: Field required"; the emulator's reading)
    for k in ("anthropic_version", "max_tokens", "messages"):
        if k not in body:
            raise RecordError(400, f"{k}: Field required")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise RecordError(400, "messages: expected a list")
    out: dict[str, Any] = {
        "messages": [{"role": m.get("role") if isinstance(m, dict) else None,
                      "content": _anthropic_blocks(f"messages.{i}.content",
                                                   m.get("content") if isinstance(m, dict) else None)}
                     for i, m in enumerate(messages)],
        "inferenceConfig": {"maxTokens": body["max_tokens"]},
    }
    if "system" in body:
        out["system"] = _anthropic_blocks("system", body["system"])
    if "stop_sequences" in body:
        out["inferenceConfig"]["stopSequences"] = body["stop_sequences"]
    for src, dst in (("temperature", "temperature"), ("top_p", "topP")):
        if src in body:
            out["inferenceConfig"][dst] = body[src]
    return out


def model_output(plan: Plan, invocation_type: str, info: ModelInfo) -> dict:
    """modelOutput of a planned record: the Converse response body, or Anthropic's
    InvokeModel response body for a Claude model in an InvokeModel job."""
    if invocation_type == "Converse" or info.family != "claude":
        return plan.response_body()
    u = plan.usage
    # Anthropic Messages response as Bedrock's InvokeModel returns it; `model` is the id
    # without the "anthropic." prefix and "-v1:0" suffix (the emulator's reading of it)
    model = info.base_id.removeprefix("anthropic.").split("-v", 1)[0]
    return {
        "id": f"msg_bdrk_{plan.request_id.replace('-', '')[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": plan.text}],
        "stop_reason": plan.stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": u.input_tokens, "cache_creation_input_tokens": u.cache_write,
                  "cache_read_input_tokens": u.cache_read, "output_tokens": u.output_tokens},
    }


def output_line(record_id: str, model_input: Any, result: dict | RecordError | BedrockError) -> bytes:
    """One line of `<input file>.out` (with its newline)."""
    line: dict[str, Any] = {"recordId": record_id, "modelInput": model_input}
    if isinstance(result, RecordError):
        line["error"] = {"errorCode": result.code, "errorMessage": result.message}
    elif isinstance(result, BedrockError):
        line["error"] = {"errorCode": result.status, "errorMessage": result.message}
    else:
        line["modelOutput"] = result
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
