"""Plan: everything the emulator decided about one accepted request, for its caller to
pace (the HTTP server on a clock, or the in-process transport in virtual time): usage,
output text, stop reason, the timing schedule and any fault during the response.
Times are scenario seconds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from loadgen.catalog.tokens import CHARS_PER_TOKEN

# The input of a forced tool call (JSON text, as a stream's toolUse delta carries it): an
# empty object, whatever the tool's schema (the emulator does not generate arguments).
TOOL_INPUT = "{}"


# Usage and Plan are NamedTuples rather than frozen dataclasses: as immutable, and built in
# one C call (the model makes both for every request; see emulator/request.py).
class Usage(NamedTuple):
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


class Plan(NamedTuple):
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
