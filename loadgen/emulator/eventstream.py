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
from json.encoder import encode_basestring_ascii
from typing import Any

_STRING = 7
# json.dumps(body, separators=...) builds an encoder per call; one does for every event
_COMPACT = json.JSONEncoder(separators=(",", ":"))


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


_PRELUDE = struct.Struct("!II")
_CRC = struct.Struct("!I")


def encode_message(headers: bytes, payload: bytes) -> bytes:
    """One event-stream message from encoded headers and a payload."""
    prelude = _PRELUDE.pack(16 + len(headers) + len(payload), len(headers))
    head = b"".join((prelude, _CRC.pack(zlib.crc32(prelude)), headers, payload))
    return head + _CRC.pack(zlib.crc32(head))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """An event message, e.g. event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {...}})."""
    return encode_message(_event_headers(event_type), _COMPACT.encode(body).encode())


@lru_cache(maxsize=64)
def constant_event(event_type: str, key: str, value: Any) -> bytes:
    """`event(event_type, {key: value})`, encoded once: the events every stream sends alike
    (messageStart, contentBlockStop of block 0, messageStop per stop reason)."""
    return event(event_type, {key: value})


_DELTA_HEAD = b'{"contentBlockIndex":0,"delta":{"text":'


def text_delta(text: str) -> bytes:
    """contentBlockDelta for block 0; the hot path of a stream, so the JSON is built by hand
    (`encode_basestring_ascii` is what json.dumps runs for a str)."""
    return encode_message(_event_headers("contentBlockDelta"),
                          b"".join((_DELTA_HEAD, encode_basestring_ascii(text).encode(), b"}}")))


def exception(exception_type: str, message: str) -> bytes:
    """An exception message, e.g. exception("throttlingException", "Too many tokens...")."""
    return encode_message(_exception_headers(exception_type),
                          json.dumps({"message": message}, separators=(",", ":")).encode())
