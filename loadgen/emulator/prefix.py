"""The prefix of a Converse request, block by block: its token count, and at each cachePoint
the digest of the exact prefix bytes before it, with the earlier positions of its lookback
window (emulator/request.py walks a request's blocks through a Prefix).

Token counting (docs/emulator.md): loadgen.catalog.tokens.count_tokens per text block (system
text, message text); every other block (tool specs, images, tool use/results, ...) counts
as the count_tokens of its canonical JSON (sorted keys, no spaces). Prefix order is
Converse's: tools -> system -> messages.

Content-block positions (for the cache lookback, docs/emulator.md "Prompt cache"): every
block of toolConfig.tools, of system and of each message's content counts as one
position, in that order; cachePoint blocks are markers and count as none. Position k is
the prefix ending with the k-th block. A cachePoint after block k is a breakpoint at
position k; Bedrock checks it and up to `cache_lookback_blocks - 1` earlier positions.

Hashing is lazy: a content block is counted at once but hashed only when a later
cachePoint needs the digest, so the blocks after a request's last cachePoint (its
question, in loadgen's workload) are never hashed. A text block hashed once is not hashed
again after the same prefix: the state after it is kept (_STATES), and a later request
with the same text there starts from it. The bytes hashed, and so every digest, are the
same as hashing each block as it comes (tests/test_simulate_hot_path.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from typing import Any, Callable, NamedTuple

from loadgen.catalog.models import TTL_SECONDS, ModelInfo
from loadgen.catalog.tokens import count_tokens


# CheckpointAt is a NamedTuple, not a frozen dataclass: as immutable, and built in one C call
# where a frozen dataclass sets each field through object.__setattr__ (`loadgen simulate`
# makes one or more per request, tens of thousands a second).
class CheckpointAt(NamedTuple):
    tokens: int       # prefix tokens before this cachePoint
    digest: bytes     # digest of the canonical prefix bytes before it
    ttl: str          # "5m" | "1h"
    # the earlier positions inside this breakpoint's lookback window, nearest first:
    # (prefix tokens, hash object whose digest() keys that prefix). Digests are taken
    # only on a lookup that needs them (most lookups hit the breakpoint itself).
    lookback: tuple[tuple[int, Any], ...] = ()


def canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class _State:
    """The prefix state after a block: never updated once made, so Prefixes share it."""

    __slots__ = ("h", "tokens", "kept", "digest")

    def __init__(self, h: Any, tokens: int, kept: bool) -> None:
        self.h = h                # SHA-256 state after the block
        self.tokens = tokens      # prefix tokens after the block
        self.kept = kept          # in _STATES (its children can be)
        self.digest: bytes | None = None  # h.digest(), once a cachePoint asked


# (state before, role marker, text) -> the state after that text block, for texts counted
# with count_tokens (None: the empty prefix). A workload's system prompt and a session's
# history are the same texts request after request, so each is hashed once, not per request
# (loadgen's system prompt alone is ~20 KB, ~12 us to encode and hash). Only blocks before a
# cachePoint get in (the others are never hashed). Bounded: cleared when full.
_STATES: dict[tuple[_State | None, bytes, str], _State] = {}
_STATES_MAX = 4096            # entries
_STATES_MAX_CHARS = 4 << 20   # characters of the texts kept as keys (4-16 MB: 1-4 bytes each)
_states_chars = 0

# a message's role marker, hashed with its first block (request._parse)
MARKERS = {"user": b"\x01user", "assistant": b"\x01assistant"}


class Prefix:
    """Running token count and digest over the prefix blocks seen so far (hashed lazily,
    and from _STATES: see the module doc)."""

    __slots__ = ("info", "count", "tokens", "state", "pending", "points", "window", "marker")

    def __init__(self, info: ModelInfo, count: Callable[[str], int] = count_tokens) -> None:
        self.info = info
        self.count = count
        self.tokens = 0
        # the state after the last block hashed or found in _STATES (None: the empty prefix)
        self.state: _State | None = None
        # blocks counted but not hashed yet: (prefix tokens before the block, after it, role
        # marker, header, bytes, the text when the block is one, for _STATES)
        self.pending: list[tuple[int, int, bytes, bytes, bytes, str | None]] = []
        self.points: list[CheckpointAt] = []
        # the positions before the current one inside a lookback window, oldest first:
        # (tokens, hash state); None until the first position, and always when the model
        # has no lookback (nothing to keep)
        self.window: deque | None = None
        self.marker = b""  # a message's role marker, hashed with its first block

    def block(self, b: Any) -> None:
        """Count one content block (hashed later, see the module doc). Raises BlockInvalid."""
        if not isinstance(b, dict) or len(b) != 1:
            raise BlockInvalid(lambda where: f"{where}: each content block must be an object with exactly one "
                               f"member (text, image, toolUse, toolResult, cachePoint, ...), got {short(b)}")
        (kind, val), = b.items()
        if kind == "cachePoint":
            self.cache_point(val)
            return
        tokens = self.tokens
        if kind == "text":
            if not isinstance(val, str):
                raise BlockInvalid(lambda where: f"{where}.text: expected a string")
            if not val:
                # Bedrock's wording (seen in client issue trackers quoting the
                # ValidationException), with its dotted path: messages.0.content.0
                raise BlockInvalid(lambda where: f"The text field in the ContentBlock object at {dotted(where)} "
                                   "is blank. Add text to the text field, and try again.")
            state = self.state
            if not self.pending and (state is None or state.kept) and self.count is count_tokens:
                after = _STATES.get((state, self.marker, val))
                if after is not None:  # the same text after the same prefix: hashed before
                    if tokens:
                        self._position(tokens, state)
                    self.state = after
                    self.tokens = after.tokens
                    self.marker = b""
                    return
            raw = val.encode()  # here, not when hashed: a text that cannot be encoded fails at once
            n = self.count(val)
            head = b"text\x00" + len(raw).to_bytes(8, "big")
            key = val
        else:
            raw = canon(b)
            n = self.count(raw.decode())
            head = kind.encode() + b"\x00" + len(raw).to_bytes(8, "big")
            key = None
        # the role marker belongs to the message's first block, so the position that ends
        # the previous message has the same digest whatever follows it
        self.pending.append((tokens, tokens + n, self.marker, head, raw, key))
        self.marker = b""
        self.tokens = tokens + n

    def _position(self, tokens: int, state: _State | None) -> None:
        """A new position begins after `tokens`: the current one joins the lookback window
        (an empty prefix is no position anything can be cached at)."""
        window = self.window
        if window is None:
            n = self.info.cache_lookback_blocks - 1
            if n <= 0:
                return
            window = self.window = deque(maxlen=n)
        window.append((tokens, state.h))  # a state is never updated: no copy

    def _hash_pending(self) -> None:
        """Hash the pending blocks, each from the state before it; the text blocks' states
        join _STATES (a cachePoint follows them: the prefix is meant to come again)."""
        global _states_chars
        state = self.state
        memo = self.count is count_tokens
        for before, after, marker, head, raw, text in self.pending:
            if before:
                self._position(before, state)
            h = hashlib.sha256() if state is None else state.h.copy()
            if marker:
                h.update(marker)
            h.update(head)
            h.update(raw)
            # a text over a quarter of the bound is not kept (the bound stays the bound);
            # shared by every model of the process: states never change once made, and
            # under the GIL a race can only misjudge the size count
            kept = (memo and text is not None and (state is None or state.kept)
                    and len(text) <= _STATES_MAX_CHARS // 4)
            new = _State(h, after, kept)
            if kept:
                if len(_STATES) >= _STATES_MAX or _states_chars + len(text) > _STATES_MAX_CHARS:
                    _STATES.clear()  # states held by a Prefix stay valid: only the lookups go
                    _states_chars = 0
                _STATES[(state, marker, text)] = new
                _states_chars += len(text)
            state = new
        self.pending.clear()
        self.state = state

    def cache_point(self, cp: Any) -> None:
        if not isinstance(cp, dict) or cp.get("type") != "default":
            raise BlockInvalid(lambda where: f"{where}.cachePoint: expected {{\"type\": \"default\"}} "
                                "(optionally with \"ttl\")")
        if len(cp) != (2 if "ttl" in cp else 1):  # "type" is in cp: any other member is unknown
            extra = set(cp) - {"type", "ttl"}
            raise BlockInvalid(lambda where: f"{where}.cachePoint: unknown member(s) {sorted(extra)}")
        ttl = cp.get("ttl", "5m")
        if ttl not in TTL_SECONDS:
            raise BlockInvalid(lambda where: f"{where}.cachePoint.ttl: expected one of 5m, 1h, got {ttl!r}")
        info = self.info
        if ttl not in info.cache_ttls:
            raise BlockInvalid(lambda where: f"cachePoint ttl {ttl!r} is not supported by model {info.base_id} "
                                f"({info.name}); supported: {', '.join(info.cache_ttls)}")
        if ttl == "1h" and any(p.ttl == "5m" for p in self.points):
            raise BlockInvalid(lambda where: "a cachePoint with ttl 1h must not follow one with ttl 5m "
                                "(longer TTLs must come first)")
        if self.pending:
            self._hash_pending()
        state = self.state
        if state is None:
            digest = _EMPTY_DIGEST
        else:
            digest = state.digest
            if digest is None:
                digest = state.digest = state.h.digest()  # digest() leaves the state as it is
        lookback = tuple(reversed(self.window)) if self.window else ()
        self.points.append(CheckpointAt(self.tokens, digest, ttl, lookback))


class BlockInvalid(Exception):
    """A content block's ValidationException, its text made from the block's path (such as
    messages[0].content[1]) only when raised: the caller knows the path, and formatting it
    for every block that passes would cost more than the checks."""

    def __init__(self, text: Callable[[str], str]) -> None:
        super().__init__()
        self.text = text


_EMPTY_DIGEST = hashlib.sha256().digest()  # a cachePoint before any block


def dotted(where: str) -> str:
    """messages[0].content[1] -> messages.0.content.1 (how Bedrock names a block)."""
    return re.sub(r"\[(\d+)\]", r".\1", where)


def short(x: Any) -> str:
    s = repr(x)
    return s if len(s) <= 80 else s[:77] + "..."
