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
- on models with a cache lookback (Claude: 20 block positions per checkpoint, the
  checkpoint's own included; models.toml cache_lookback_blocks) a checkpoint also reads
  the longest prefix an earlier checkpoint wrote at a block position inside its window
  (`Checkpoint.lookback`), and that entry's TTL restarts: such a prefix counts like one
  of the request's own checkpoints for reading, never for writing;
- a written prefix becomes readable only once the response of the request that
  wrote it has begun: "For concurrent requests, note that a cache entry only becomes
  available after the first response begins. If you need cache hits for parallel
  requests, wait for the first response before sending subsequent requests."
  (Anthropic, Prompt caching, https://docs.claude.com/en/docs/build-with-claude/prompt-caching;
  Bedrock serves the same Claude models and we assume the same rule there);
- an entry lives `ttl` from the start of the request that wrote or last read it
  (same page: "The lifetime is measured from the start of the request that writes or
  reads the cache entry").

What the client knows, and when (every fact is applied at the scenario time the
client learns it, so the model is the same on any clock):
- a ConverseStream attempt's response began when its first contentBlockDelta
  arrived (`Write.began`); from then its prefixes are readable for certain;
- a Converse (non-streaming) attempt's response began somewhere between its send
  and its reply: the client only knows it at the reply;
- an attempt that failed before anything arrived (other than a throttle, which is
  refused before the prompt is processed) may or may not have written: from its
  send its prefixes are *possibly* alive, until its TTL;
- an attempt in flight whose response has not begun yet may make its prefixes
  readable at any moment.
A request sent while its deciding prefix is only possibly alive is a *race*: the
prediction stays the best guess (cold), `Prediction.race` is set, and a warm
observation then is not a mismatch (metrics count it under `cache.race`). So is a
request predicted cold whose own response began only after another response with
the same prefix had begun (`Write.finished`): the client cannot see whether the
service received it before or after that moment.
"""

from __future__ import annotations

import heapq
import math
import operator
from dataclasses import dataclass, replace
from typing import Any

from loadgen.catalog.models import TTL_SECONDS
from loadgen.engine.frozen import built
from loadgen.engine.workload import Checkpoint

_NEVER = -math.inf


@dataclass(frozen=True)
class Prediction:
    state: str            # warm | cold | none
    gap_s: float | None   # scenario s since the previous use of the longest key used before
    expected_read: int = 0  # tokens of the longest prefix cached before (what a warm call reads)
    race: bool = False    # the deciding prefix was possibly but not certainly alive: either state may come
    read: int = 0         # tokens of the longest prefix certainly alive now (what this call should read)


_NO_CHECKPOINT = Prediction("none", None, 0)  # a request without a valid checkpoint (immutable: shared)
def _prediction(state: str, gap_s: float | None, expected_read: int, race: bool, read: int) -> Prediction:
    """`Prediction(state, gap_s, expected_read, race, read)` in one step (engine/frozen.py):
    predict() makes one per attempt."""
    return built(Prediction, {"state": state, "gap_s": gap_s, "expected_read": expected_read, "race": race,
                              "read": read})


class _Entry:
    """What the client knows about one cache key (scenario seconds)."""

    __slots__ = ("ready", "expires", "last_use", "maybe_until", "in_flight", "begun")

    def __init__(self) -> None:
        self.ready = math.inf          # readable for certain from here ...
        self.expires = _NEVER          # ... until here
        self.last_use: float | None = None  # send time of the latest attempt known to have used it
        self.maybe_until = _NEVER      # possibly alive until here (attempts whose fate is unknown)
        self.in_flight = 0             # attempts sent with this key that have not ended
        self.begun = 0                 # responses known to have begun with this key (a counter)


class Write:
    """One attempt's effect on the cache model: made by `CacheExpectations.sent`.

    Call `began(t)` when the response began (the first content delta arrived, or the
    Converse reply), `finished(status, end)` once the attempt is over. `began` may be
    called ahead of time with a future `t` (a transport that knows its timing in
    advance); the fact is applied only when the model is asked about time `t` or later.
    """

    __slots__ = ("_ex", "_keys", "_reads", "start", "_began", "_seen", "_overtaken")

    def __init__(self, ex: "CacheExpectations", keys: list[tuple[tuple, float]], start: float,
                 reads: list[tuple[tuple, float, bool]] | None, seen: list[int]) -> None:
        self._ex = ex
        self._keys = keys      # (key, ttl_s) of the valid checkpoints
        # with a lookback: (key, ttl_s, found only by the lookback) of every prefix the
        # request may read, longest first
        self._reads = reads
        self.start = start
        self._began = False
        self._seen = seen      # Entry.begun of each key at the send
        self._overtaken = False  # another response with one of its prefixes began before its own

    def began(self, t: float) -> None:
        if self._began:
            return
        self._began = True
        ex = self._ex
        ex._seq += 1
        heapq.heappush(ex._known, (t, ex._seq, self))

    def finished(self, status: str, end: float, pred: Prediction) -> Prediction:
        """The attempt ended (`status`, at `end`): returns `pred`, marked as a race when
        another response with one of its prefixes began while this one was in flight
        before its own began. The client cannot tell whether this request reached the
        service before or after that (network and client delays), so either state may come."""
        ex = self._ex
        if not self._began and status == "ok":
            self.began(end)  # a reply with no content delta: it began by the time it ended
        known = ex._known
        if known and known[0][0] <= end:
            ex._apply_until(end)
        overtaken = self._overtaken
        for (key, ttl), seen in zip(self._keys, self._seen):
            e = ex._entries.get(key)
            if e is None:
                continue
            e.in_flight -= 1
            if not self._began:
                overtaken = overtaken or e.begun > seen
                if status != "throttled":
                    # refused with an error, cut off or timed out before anything arrived: the
                    # prompt may have been processed (and cached) all the same
                    e.maybe_until = max(e.maybe_until, self.start + ttl)
        if overtaken and pred.state == "cold" and not pred.race:
            return replace(pred, race=True)
        return pred

    def _apply(self) -> None:
        """The response began: every valid prefix is readable from now, alive `ttl` from the send."""
        start = self.start
        entries = self._ex._entries
        if self._reads:
            # the service read the longest prefix alive at the send; if only the lookback
            # found it, that entry's TTL restarted (the checkpoints' own are handled below)
            for key, ttl, by_lookback in self._reads:
                e = entries.get(key)
                if e is not None and e.ready <= start < e.expires:
                    if by_lookback:
                        e.expires = max(e.expires, start + ttl)
                        if e.last_use is None or start > e.last_use:
                            e.last_use = start
                    break
        for (key, ttl), seen in zip(self._keys, self._seen):
            e = entries.get(key)
            if e is None:
                continue  # the session was forgotten meanwhile
            if e.begun > seen:
                self._overtaken = True
            e.begun += 1
            if e.expires > start:
                # a hit (refresh) or a second write of an entry still in flight: it stays,
                # readable from the earliest response that began
                e.expires = max(e.expires, start + ttl)
            else:
                e.expires = start + ttl
                e.ready = math.inf
            e.ready = min(e.ready, self._ex._now)
            if e.last_use is None or start > e.last_use:
                e.last_use = start


class CacheExpectations:
    def __init__(self, min_tokens: int, *, others_write_shared: bool = False) -> None:
        """`others_write_shared`: other processes send this arm's prefixes that are not
        scoped to one session (the system prompt) and this model cannot see them (a run
        split over processes). A cold prediction on such a prefix is then a race: the
        other processes may well have cached it, so a warm reply is no mismatch."""
        self.min_tokens = min_tokens
        self.others_write_shared = others_write_shared
        self._entries: dict[tuple, _Entry] = {}
        self._known: list[tuple[float, int, Write]] = []  # (t, seq, write): responses begun at t
        self._seq = 0
        self._now = _NEVER
        self._memo: tuple[list[Checkpoint], list[Checkpoint]] | None = None

    def _valid(self, checkpoints: tuple[Checkpoint, ...]) -> list[Checkpoint]:
        return [c for c in checkpoints if c.tokens >= self.min_tokens]

    def _readable(self, valid: list[Checkpoint]) -> list[Checkpoint]:
        """Every prefix a call with these (valid) checkpoints may read, shortest first: the
        checkpoints and the earlier prefixes inside their lookback windows. The service
        reads the longest one alive (the lookback of a later checkpoint is checked before
        an earlier checkpoint, and only ever holds longer prefixes than it)."""
        for c in valid:  # a loop, not any(<generator>): this runs twice per attempt
            if c.lookback:
                break
        else:
            return valid
        memo = self._memo
        if memo is not None and len(memo[0]) == len(valid) and all(map(operator.is_, memo[0], valid)):
            return memo[1]  # the runner asks predict() then sent() about the same request
        by_key = {c.key: c for c in valid}
        for c in valid:
            for lb in c.lookback:
                if lb.tokens >= self.min_tokens and lb.key not in by_key:
                    by_key[lb.key] = lb
        out = sorted(by_key.values(), key=lambda c: c.tokens)
        self._memo = (valid, out)
        return out

    def _apply_until(self, now: float) -> None:
        known = self._known
        while known and known[0][0] <= now:
            t, _, w = heapq.heappop(known)
            self._now = t
            w._apply()

    def predict(self, checkpoints: tuple[Checkpoint, ...], now: float) -> Prediction:
        # predict, sent and finished run once per attempt: the calls to _valid and
        # _apply_until are written out, and the Prediction built in one step (_prediction)
        min_tokens = self.min_tokens
        valid = [c for c in checkpoints if c.tokens >= min_tokens]
        if not valid:
            return _NO_CHECKPOINT
        known = self._known
        if known and known[0][0] <= now:
            self._apply_until(now)
        valid = self._readable(valid)
        entries = self._entries
        read = 0
        for c in reversed(valid):  # the longest prefix alive for certain is what the call reads
            e = entries.get(c.key)
            if e is not None and e.ready <= now < e.expires:
                read = c.tokens
                break
        for i in range(len(valid) - 1, -1, -1):  # longest prefix first
            e = entries.get(valid[i].key)
            if e is not None and e.last_use is not None:
                # warm only if the longest prefix cached before is still alive (it is what a
                # warm call reads); a shorter live prefix still means a big re-write: cold
                if e.ready <= now < e.expires:
                    return _prediction("warm", now - e.last_use, valid[i].tokens, False, read)
                return _prediction("cold", now - e.last_use, valid[i].tokens,
                                   _racing(entries, valid[i:], now) or self._unseen(valid[i:]), read)
        # never used before: only a write in flight (or of unknown fate) could make it warm
        return _prediction("cold", None, 0, _racing(entries, valid, now) or self._unseen(valid), read)

    def _unseen(self, checkpoints: list[Checkpoint]) -> bool:
        """Whether another process may have cached one of these prefixes unseen (see __init__)."""
        return self.others_write_shared and any(c.key[:1] != ("session",) for c in checkpoints)

    def sent(self, checkpoints: tuple[Checkpoint, ...], start: float) -> Write:
        """An attempt with these checkpoints was sent at `start` (scenario s)."""
        keys = []
        seen = []
        entries = self._entries
        valid = self._valid(checkpoints)
        for c in valid:
            e = entries.get(c.key)
            if e is None:
                e = entries[c.key] = _Entry()
            e.in_flight += 1
            keys.append((c.key, TTL_SECONDS.get(c.ttl, 300.0)))
            seen.append(e.begun)
        reads = None
        readable = self._readable(valid)
        if readable is not valid:
            own = {c.key for c in valid}
            reads = [(c.key, TTL_SECONDS.get(c.ttl, 300.0), c.key not in own) for c in reversed(readable)]
        return Write(self, keys, start, reads, seen)

    def observe(self, checkpoints: tuple[Checkpoint, ...], now: float) -> None:
        """A call with these checkpoints was sent at `now` and its response began at once."""
        w = self.sent(checkpoints, now)
        w.began(now)
        w.finished("ok", now, Prediction("none", None))

    def usage_estimate(self, checkpoints: tuple[Checkpoint, ...], input_tokens: int, read: int) -> dict[str, Any]:
        """The input side of a Converse `usage` (wire keys) as this model expects Bedrock to
        report it: `read` tokens (Prediction.read) read from the cache, every longer valid
        checkpoint's prefix written at its TTL, the rest uncached. The same split as the
        emulator's (loadgen/emulator/model.py)."""
        details: dict[str, int] = {}
        prev = read
        for c in self._valid(checkpoints):
            if c.tokens > prev:
                details[c.ttl] = details.get(c.ttl, 0) + c.tokens - prev
                prev = c.tokens
        write = prev - read
        usage: dict[str, Any] = {"inputTokens": max(0, input_tokens - read - write),
                                 "cacheReadInputTokens": read, "cacheWriteInputTokens": write}
        if details:
            usage["cacheDetails"] = [{"ttl": t, "inputTokens": n}
                                     for t, n in sorted(details.items(), key=lambda kv: -TTL_SECONDS[kv[0]])]
        return usage

    def forget_session(self, key_prefix: tuple) -> None:
        """Drop a finished session's keys (bounded memory over long runs)."""
        n = len(key_prefix)
        d = self._entries
        for k in [k for k in d if k[:n] == key_prefix]:
            del d[k]


def _racing(entries: dict[tuple, _Entry], checkpoints: list[Checkpoint], now: float) -> bool:
    """Whether a write whose outcome the client does not know yet could make one of these
    prefixes alive now (an attempt in flight, or one that failed before a reply)."""
    for c in checkpoints:
        e = entries.get(c.key)
        if e is not None and (e.in_flight > 0 or e.maybe_until > now):
            return True
    return False


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
        # races with this run's own writes (in flight, or failed before a reply) are not
        # counted as mismatches, so what is left came from outside loadgen's view
        return ("another client (or an earlier run) cached the same prefix, or the service kept "
                "the entry a little past the TTL loadgen counts from each send")
    return "unexpected cache behaviour"
