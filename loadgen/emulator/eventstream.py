"""AWS event stream encoder (application/vnd.amazon.eventstream), as ConverseStream sends it.

Message layout (all integers big-endian):
  prelude   total length (4) | headers length (4) | CRC32 of those 8 bytes (4)
  headers   per header: name length (1) | name | type (1; 7 = string) | value length (2) | value
  payload   JSON bytes
  trailer   CRC32 of everything before it (4)
Events carry `:event-type` / `:content-type` / `:message-type` = event; exceptions
`:exception-type` / `:content-type` / `:message-type` = exception.
Tested by decoding with botocore's own EventStreamBuffer (CRCs checked).
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache
from typing import Any

_STRING = 7


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + struct.pack("!BH", _STRING, len(v)) + v


@lru_cache(maxsize=64)
def _event_headers(event_type: str) -> bytes:
    return (_header(":event-type", event_type) + _header(":content-type", "application/json")
            + _header(":message-type", "event"))


@lru_cache(maxsize=16)
def _exception_headers(exception_type: str) -> bytes:
    return (_header(":exception-type", exception_type) + _header(":content-type", "application/json")
            + _header(":message-type", "exception"))


def encode_message(headers: bytes, payload: bytes) -> bytes:
    """One event-stream message from encoded headers and a payload."""
    total = 16 + len(headers) + len(payload)
    prelude = struct.pack("!II", total, len(headers))
    head = prelude + struct.pack("!I", zlib.crc32(prelude)) + headers + payload
    return head + struct.pack("!I", zlib.crc32(head))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """An event message, e.g. event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {...}})."""
    return encode_message(_event_headers(event_type), json.dumps(body, separators=(",", ":")).encode())


_DELTA_HEAD = b'{"contentBlockIndex":0,"delta":{"text":'


def text_delta(text: str) -> bytes:
    """contentBlockDelta for block 0; the hot path of a stream, so the JSON is built by hand."""
    return encode_message(_event_headers("contentBlockDelta"),
                          _DELTA_HEAD + json.dumps(text).encode() + b"}}")


def exception(exception_type: str, message: str) -> bytes:
    """An exception message, e.g. exception("throttlingException", "Too many tokens...")."""
    return encode_message(_exception_headers(exception_type),
                          json.dumps({"message": message}, separators=(",", ":")).encode())
