"""The prompt cache: entries keyed by (model, cache Region, prefix digest), each with a
TTL that restarts on every hit, LRU-bounded.

Times are scenario seconds. An entry written by a request becomes readable only once
that request's response has begun (`ready_at`, its first-token time): two identical
requests in flight together both write. Source: Anthropic's prompt-caching page, "For
concurrent requests, note that a cache entry only becomes available after the first
response begins" (https://docs.claude.com/en/docs/build-with-claude/prompt-caching);
Bedrock serves the same Claude models, and we assume the same rule there. The TTL
counts from the start of the request that wrote or read the entry (same page).
"""

from __future__ import annotations

from collections import OrderedDict


class PromptCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        # key -> [ready_at, expires_at, ttl_s]; order = least recently used first
        self._entries: OrderedDict[tuple, list[float]] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def alive(self, key: tuple, now: float) -> bool:
        e = self._entries.get(key)
        if e is None:
            return False
        if e[1] <= now:
            del self._entries[key]
            return False
        return e[0] <= now

    def touch(self, key: tuple, now: float) -> None:
        """A hit: the TTL starts again from now."""
        e = self._entries[key]
        e[1] = now + e[2]
        self._entries.move_to_end(key)

    def touch_if_alive(self, key: tuple, now: float) -> None:
        """`touch` when `alive` (which drops an expired entry), in one lookup."""
        e = self._entries.get(key)
        if e is None:
            return
        if e[1] <= now:
            del self._entries[key]
        elif e[0] <= now:
            e[1] = now + e[2]
            self._entries.move_to_end(key)

    def write(self, key: tuple, now: float, ttl_s: float, ready_at: float) -> None:
        e = self._entries.get(key)
        if e is not None and e[1] > now:
            # an entry alive or still being written: readable from whichever response
            # begins first (a later write can have the shorter time to first token)
            e[0] = min(e[0], ready_at)
            e[1] = max(e[1], now + ttl_s)
            self._entries.move_to_end(key)
            return
        self._entries[key] = [ready_at, now + ttl_s, ttl_s]
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
            self.evictions += 1
