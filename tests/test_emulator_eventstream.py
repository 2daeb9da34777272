"""The eventstream encoder, decoded by botocore's own parser (CRCs checked)."""

import json

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from loadgen.emulator import eventstream


def decode(data: bytes):
    buf = EventStreamBuffer()
    buf.add_data(data)
    return list(buf)


def test_events_and_exceptions_decode_with_botocore():
    data = (eventstream.event("messageStart", {"role": "assistant"})
            + eventstream.text_delta("héllo")
            + eventstream.exception("throttlingException", "Too many tokens"))
    msgs = decode(data)
    assert [m.headers for m in msgs] == [
        {":event-type": "messageStart", ":content-type": "application/json", ":message-type": "event"},
        {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"},
        {":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"},
    ]
    assert json.loads(msgs[1].payload) == {"contentBlockIndex": 0, "delta": {"text": "héllo"}}
    assert msgs[2].payload == b'{"message":"Too many tokens"}'


def test_corrupted_byte_fails_botocore_crc_check():
    data = bytearray(eventstream.event("messageStop", {"stopReason": "end_turn"}))
    data[-6] ^= 0xFF
    with pytest.raises(ChecksumMismatch):
        decode(bytes(data))


def test_split_across_reads():
    data = eventstream.event("metadata", {"usage": {"inputTokens": 1}}) * 3
    buf = EventStreamBuffer()
    got = []
    for i in range(0, len(data), 7):
        buf.add_data(data[i:i + 7])
        got.extend(buf)
    assert len(got) == 3


def test_constant_events_are_the_bytes_event_gives():
    assert eventstream.constant_event("messageStart", "role", "assistant") == \
        eventstream.event("messageStart", {"role": "assistant"})
    assert eventstream.constant_event("contentBlockStop", "contentBlockIndex", 0) == \
        eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
    for reason in ("end_turn", "max_tokens", "stop_sequence", "tool_use"):
        assert eventstream.constant_event("messageStop", "stopReason", reason) == \
            eventstream.event("messageStop", {"stopReason": reason})
