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
question, in loadgen's workload) are never hashed; the bytes hashed, and so every digest,
are the same as hashing each block as it comes (tests/test_simulate_hot_path.py).
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


# first text block (with count_tokens) -> [SHA-256 state after it, its tokens, digest or None];
# see Prefix._first_text. Texts under _MEMO_MIN_CHARS are cheaper to hash than to look up.
_FIRST_TEXT: dict[str, list] = {}
_MEMO_MIN_CHARS = 1024
_MEMO_ENTRIES = 64  # distinct system prompts kept (one per arm in a run); cleared when full

# a message's role marker, hashed with its first block (request._parse)
MARKERS = {"user": b"\x01user", "assistant": b"\x01assistant"}


class Prefix:
    """Running token count and digest over the prefix blocks seen so far (hashed lazily:
    see the module doc)."""

    __slots__ = ("info", "count", "tokens", "h", "shared", "pending", "points", "window", "marker", "fresh")

    def __init__(self, info: ModelInfo, count: Callable[[str], int] = count_tokens) -> None:
        self.info = info
        self.count = count
        self.tokens = 0
        self.h: Any = None  # SHA-256 state of the hashed blocks (None: nothing hashed yet)
        self.shared: list | None = None  # the _FIRST_TEXT entry self.h belongs to (copy before updating)
        # blocks counted but not hashed yet: (prefix tokens before the block, role marker,
        # header, bytes)
        self.pending: list[tuple[int, bytes, bytes, bytes]] = []
        self.points: list[CheckpointAt] = []
        # the positions before the current one inside a lookback window, oldest first:
        # (tokens, hash state); None until the first position is hashed, and always when
        # the model has no lookback (nothing to keep)
        self.window: deque | None = None
        self.marker = b""  # a message's role marker, hashed with its first block
        self.fresh = True  # no block yet (the state _FIRST_TEXT memoises from)

    def block(self, b: Any) -> None:
        """Count one content block (hashed later, see the class doc). Raises BlockInvalid."""
        if not isinstance(b, dict) or len(b) != 1:
            raise BlockInvalid(lambda where: f"{where}: each content block must be an object with exactly one "
                                f"member (text, image, toolUse, toolResult, cachePoint, ...), got {short(b)}")
        (kind, val), = b.items()
        if kind == "cachePoint":
            self.cache_point(val)
            return
        if kind == "text":
            if not isinstance(val, str):
                raise BlockInvalid(lambda where: f"{where}.text: expected a string")
            if not val:
                # Bedrock's wording (seen in client issue trackers quoting the
                # ValidationException), with its dotted path: messages.0.content.0
                raise BlockInvalid(lambda where: f"The text field in the ContentBlock object at {dotted(where)} "
                                    "is blank. Add text to the text field, and try again.")
            if self.fresh and not self.marker and len(val) >= _MEMO_MIN_CHARS and self.count is count_tokens:
                self._first_text(val)
                return
            raw = val.encode()  # here, not when hashed: a text that cannot be encoded fails at once
            n = self.count(val)
            head = b"text\x00" + len(raw).to_bytes(8, "big")
        else:
            raw = canon(b)
            n = self.count(raw.decode())
            head = kind.encode() + b"\x00" + len(raw).to_bytes(8, "big")
        # the role marker belongs to the message's first block, so the position that ends
        # the previous message has the same digest whatever follows it
        self.pending.append((self.tokens, self.marker, head, raw))
        self.marker = b""
        self.tokens += n
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
            memo = _FIRST_TEXT[val] = [h, count_tokens(val), None]
        self.h = memo[0]  # never updated: copied first (_hash_pending)
        self.shared = memo
        self.tokens += memo[1]
        self.fresh = False

    def _hash_pending(self) -> None:
        """Hash the pending blocks, keeping the lookback window's positions as it goes."""
        h = self.h
        own = h is not None and self.shared is None  # else a new state, or a copy of the memo's
        window = self.window
        if window is None and self.info.cache_lookback_blocks > 1:
            window = self.window = deque(maxlen=self.info.cache_lookback_blocks - 1)
        for tokens, marker, head, raw in self.pending:
            if window is not None and tokens:
                # the position this block ends is a new one: the current one joins the window
                # (an empty prefix is no position anything can be cached at). A memo's state
                # is never updated, so it needs no copy.
                window.append((tokens, h.copy() if own else h))
            if not own:
                h = hashlib.sha256() if h is None else h.copy()
                own = True
                self.shared = None
            if marker:
                h.update(marker)
            h.update(head)
            h.update(raw)
        self.pending.clear()
        self.h = h

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
        if self.h is None:
            digest = _EMPTY_DIGEST
        elif self.shared is not None:
            digest = self.shared[2]
            if digest is None:
                digest = self.shared[2] = self.h.digest()
        else:
            digest = self.h.digest()  # digest() leaves the state as it is: no copy needed
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
