"""The body of a ConverseStream response as a write schedule: which event-stream
messages leave together, when (scenario seconds after the request start), and how many
output tokens the client holds once each is out. Pure: the server paces it on its clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.emulator import eventstream
from loadgen.emulator.plan import TOOL_INPUT, Plan


@dataclass(frozen=True)
class Write:
    """One write of a stream body: `offset` scenario s after the start; `tokens`: output
    tokens delivered once it is out (what the quota is charged if the stream stops there)."""

    offset: float
    data: bytes
    tokens: int
    has_delta: bool


def stream_schedule(plan: Plan) -> tuple[list[Write], float, bool]:
    """The body of a ConverseStream response to `plan`: (writes in order, offset of the
    response's end, whether the connection is dropped there rather than closed cleanly).

    Every event due at the same moment goes into one write. The first delta leaves at
    ttft; later ones as their first token is generated; a stream with a single delta
    sends it with the final events at duration_s. A mid-stream fault ends the body
    after `after_deltas` deltas, at the time the last of them was due (ttft if none):
    an exception event, or a dropped connection.
    """
    fault = plan.fault
    writes: list[Write] = []
    pending = [eventstream.constant_event("messageStart", "role", "assistant")]
    if plan.tool_use is not None:
        # a forced tool call (botocore ConverseStreamOutput: contentBlockStart with toolUse,
        # then toolUse input deltas), sent with the final events as a single delta is
        tool_id, name = plan.tool_use
        pending.append(eventstream.event("contentBlockStart", {
            "contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}))
        pending.append(eventstream.event("contentBlockDelta", {
            "contentBlockIndex": 0, "delta": {"toolUse": {"input": TOOL_INPUT}}}))
        pending += _final_events(plan)
        return [Write(plan.duration_s, b"".join(pending), plan.usage.output_tokens, True)], plan.duration_s, False
    has_delta = False
    delivered = 0
    t_due = plan.ttft_s
    for i, (offset, text) in enumerate(plan.deltas()):
        if fault is not None and i == fault.after_deltas:
            break
        if offset > t_due and pending:
            writes.append(Write(t_due, b"".join(pending), delivered, has_delta))
            pending, has_delta = [], False
        t_due = max(t_due, offset)
        pending.append(eventstream.text_delta(text))
        has_delta = True
        delivered = min(plan.usage.output_tokens, (i + 1) * plan.chunk_tokens)
    if fault is not None and fault.kind == "reset":
        if pending:
            writes.append(Write(t_due, b"".join(pending), delivered, has_delta))
        return writes, t_due, True
    if fault is not None:
        pending.append(eventstream.exception(fault.code, fault.message))
        writes.append(Write(t_due, b"".join(pending), delivered, has_delta))
        return writes, t_due, False
    end = max(t_due, plan.duration_s)
    pending += _final_events(plan)
    writes.append(Write(end, b"".join(pending), plan.usage.output_tokens, has_delta))
    return writes, end, False


def _final_events(plan: Plan) -> list[bytes]:
    return [eventstream.constant_event("contentBlockStop", "contentBlockIndex", 0),
            eventstream.constant_event("messageStop", "stopReason", plan.stop_reason),
            eventstream.event("metadata", {"usage": plan.usage.to_wire(),
                                           "metrics": {"latencyMs": plan.latency_ms},
                                           **plan.tier_wire()})]
