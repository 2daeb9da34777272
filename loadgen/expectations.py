"""Client-side model of the prompt cache: predicts warm/cold before each send.

Bedrock does not say *why* a call missed the cache. loadgen knows which prefixes
it sent and when, so it keeps its own model of each cache key (last use, TTL,
refreshed on every hit) and predicts the cache state of every request. The run
records prediction and observation side by side; a mismatch points at a volatile
prefix, a prefix under the model's minimum, a different serving Region (the cache
is per Region), or early eviction.

Rules (Bedrock's documented behaviour):
- a checkpoint whose prefix is below the model's minimum tokens is ignored;
- a request is warm if any of its checkpoints' prefixes is alive, cold if it has
  a valid checkpoint but none alive, none without a valid checkpoint;
- after a successful call every valid checkpoint's entry lives `ttl` from then.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.models import TTL_SECONDS
from loadgen.workload import Checkpoint


@dataclass(frozen=True)
class Prediction:
    state: str            # warm | cold | none
    gap_s: float | None   # scenario s since the previous use of the longest key used before
    expected_read: int = 0  # tokens of the longest prefix cached before (what a warm call reads)


class CacheExpectations:
    def __init__(self, min_tokens: int) -> None:
        self.min_tokens = min_tokens
        self._expiry: dict[tuple, float] = {}
        self._last_use: dict[tuple, float] = {}

    def _valid(self, checkpoints: tuple[Checkpoint, ...]) -> list[Checkpoint]:
        return [c for c in checkpoints if c.tokens >= self.min_tokens]

    def predict(self, checkpoints: tuple[Checkpoint, ...], now: float) -> Prediction:
        valid = self._valid(checkpoints)
        if not valid:
            return Prediction("none", None, 0)
        for c in reversed(valid):  # longest prefix first
            last = self._last_use.get(c.key)
            if last is not None:
                # warm only if the longest prefix cached before is still alive (it is what a
                # warm call reads); a shorter live prefix still means a big re-write: cold
                alive = self._expiry.get(c.key, -1.0) >= now
                return Prediction("warm" if alive else "cold", now - last, c.tokens)
        # never used before: only another arm's or session's entry could make it warm
        alive = any(self._expiry.get(c.key, -1.0) >= now for c in valid)
        return Prediction("warm" if alive else "cold", None, 0)

    def observe(self, checkpoints: tuple[Checkpoint, ...], now: float) -> None:
        """A call with these checkpoints succeeded at `now` (scenario s)."""
        for c in self._valid(checkpoints):
            self._expiry[c.key] = now + TTL_SECONDS.get(c.ttl, 300.0)
            self._last_use[c.key] = now

    def forget_session(self, key_prefix: tuple) -> None:
        """Drop a finished session's keys (bounded memory over long runs)."""
        n = len(key_prefix)
        for d in (self._expiry, self._last_use):
            for k in [k for k in d if k[:n] == key_prefix]:
                del d[k]


def likely_cause(predicted: str, observed: str, *, profile: str) -> str:
    """A one-line guess at why prediction and observation differ, for the report."""
    if predicted == observed:
        return ""
    if observed == "none":
        return "no cache fields at all: the prefix may be below the model's minimum, or caching is unsupported"
    if predicted == "warm" and observed == "cold":
        if profile in ("geo", "global"):
            return "served from a Region where the prefix was not cached (cross-Region routing), or evicted early"
        return "evicted before its TTL, or the prefix bytes changed (volatile content above the checkpoint)"
    if predicted == "cold" and observed == "warm":
        return ("an earlier attempt that failed or timed out on the client still wrote the cache, "
                "or another client cached the same prefix")
    return "unexpected cache behaviour"
