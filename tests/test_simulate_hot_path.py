"""The shortcuts `loadgen simulate`'s hot path takes give exactly what the long way gives:
request-id text, histogram buckets, the digest of a request's first (system) block, the
prefix digests hashed lazily, the cache model's predictions."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.catalog.models import lookup
from loadgen.emulator import prefix as prefix_mod
from loadgen.emulator import request as request_mod
from loadgen.emulator.ids import uuid4_text
from loadgen.emulator.reply_hint import REPLY_HINT, reply_hint
from loadgen.engine import expectations
from loadgen.engine.expectations import Prediction
from loadgen.results.histograms import HIST_HIGHEST_US, new_histogram, record_us, record_us_twice


@settings(deadline=None)  # a busy machine: timing is not what these test
@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_uuid4_text_is_uuid_modules_text(bits):
    assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 5000), st.integers(0, HIST_HIGHEST_US),
                          st.sampled_from([0, 1, 2047, 2048, 4095, 4096, HIST_HIGHEST_US])), max_size=60))
def test_record_us_is_record_value(values):
    fast, slow = new_histogram(), new_histogram()
    for v in values:
        record_us(fast, v)
        slow.record_value(v)
    assert list(fast.counts) == list(slow.counts)
    assert (fast.total_count, fast.min_value, fast.max_value) == (slow.total_count, slow.min_value, slow.max_value)
    assert fast.get_value_at_percentile(99.0) == slow.get_value_at_percentile(99.0)
    twice, other = new_histogram(), new_histogram()
    for v in values:
        record_us_twice(twice, other, v)
    for h in (twice, other):
        assert list(h.counts) == list(slow.counts)
        assert (h.total_count, h.min_value, h.max_value) == (slow.total_count, slow.min_value, slow.max_value)


@given(st.sampled_from(["warm", "cold", "none"]), st.one_of(st.none(), st.floats(0, 1e6)), st.integers(0, 10**6),
       st.booleans(), st.integers(0, 10**6))
def test_prediction_in_one_step_is_the_dataclass(state, gap, expected, race, read):
    fast, slow = expectations._prediction(state, gap, expected, race, read), Prediction(state, gap, expected, race, read)
    assert fast == slow and list(vars(fast)) == list(vars(slow)) and hash(fast) == hash(slow)


def _body(system: str, question: str) -> dict:
    return {"system": [{"text": system}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": question}]}]}


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3000), st.text(alphabet="abc xyz", max_size=20), st.text(alphabet="abc", min_size=1, max_size=50))
def test_memoised_first_block_gives_the_same_checkpoints(n, tail, question):
    system = ("lorem ipsum " * 300)[:n] + tail
    info = lookup("anthropic.claude-haiku-4-5-20251001-v1:0")
    prefix_mod._STATES.clear()
    first = request_mod.parse(_body(system, question), info)
    again = request_mod.parse(_body(system, question), info)  # the system text from the memo
    # the long way: a counting function other than count_tokens is never memoised
    slow = request_mod.parse(_body(system, question), info)
    prefix_mod._STATES.clear()
    plain = request_mod._parse(_body(system, question), info, None, lambda t: request_mod.count_tokens(t))
    for r in (first, again, slow):
        assert r.input_tokens == plain.input_tokens
        assert [(c.tokens, c.digest, c.ttl) for c in r.checkpoints] == \
               [(c.tokens, c.digest, c.ttl) for c in plain.checkpoints]


@settings(deadline=None)
@given(st.lists(st.sampled_from(["reply", "Reply", "REPLY", "rEpLy", " with", " wıth", " WİTH", " about ", " ABOUT ",
                                 "12", "٣", " tokens", " TOKENS", "ſ", "K", "İ", "x", " ", "reply with about 7 tokens"]),
                max_size=30).map("".join))
def test_reply_hint_finds_what_the_regex_finds(text):
    want = REPLY_HINT.search(text)
    got = reply_hint(text)
    assert (got and (got.start(), got.group(0), got.group(1))) == (want and (want.start(), want.group(0), want.group(1)))


def _eager_checkpoints(body: dict, info) -> list[tuple[int, bytes, str, list[tuple[int, bytes]]]]:
    """The prefix digests the plain way (the rule of emulator/request.py's docstring): every
    block hashed as it comes, [role marker] kind NUL length bytes, a state kept per position
    for the lookback window. (tokens, digest, ttl, [(tokens, digest) of the window]) per
    cachePoint."""
    h, tokens, points = hashlib.sha256(), 0, []
    window: deque = deque(maxlen=max(1, info.cache_lookback_blocks - 1))

    def block(b: dict) -> None:
        nonlocal tokens, marker
        (kind, val), = b.items()
        if kind == "cachePoint":
            lookback = [(t, s.digest()) for t, s in reversed(window)] if info.cache_lookback_blocks > 1 else []
            points.append((tokens, h.digest(), val.get("ttl", "5m"), lookback))
            return
        if tokens:
            window.append((tokens, h.copy()))
        raw = val.encode() if kind == "text" else json.dumps(b, sort_keys=True, separators=(",", ":"),
                                                             ensure_ascii=False).encode()
        h.update(marker + kind.encode() + b"\x00" + len(raw).to_bytes(8, "big") + raw)
        tokens += request_mod.count_tokens(raw.decode())
        marker = b""

    marker = b""  # a message's role, hashed with its first block that is not a cachePoint
    for t in body.get("toolConfig", {}).get("tools", []):
        block(t)
    for b in body.get("system", []):
        block(b)
    for m in body["messages"]:
        marker = b"\x01" + m["role"].encode()
        for b in m["content"]:
            block(b)
    return points


_TEXTS = st.one_of(st.text(alphabet="ab é", min_size=1, max_size=40),
                   st.integers(1020, 1100).map(lambda n: ("lorem ipsum " * 100)[:n]))
_BLOCKS = st.lists(st.one_of(_TEXTS.map(lambda s: {"text": s}),
                             st.just({"cachePoint": {"type": "default"}}),
                             st.just({"toolUse": {"toolUseId": "t1", "name": "f", "input": {"x": 1}}})),
                   min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.lists(_TEXTS.map(lambda s: {"text": s}) | st.just({"cachePoint": {"type": "default"}}), max_size=4),
       st.lists(_BLOCKS, min_size=1, max_size=4),
       st.sampled_from(["anthropic.claude-haiku-4-5-20251001-v1:0", "amazon.nova-micro-v1:0"]))
def test_lazy_hashing_gives_the_digests_of_hashing_every_block(system, contents, model):
    """Blocks are hashed only when a later cachePoint needs them, the first long text from a
    memo: the checkpoints, and the lookback positions of each, are what hashing every block
    in turn gives."""
    info = lookup(model)
    messages = [{"role": ("user", "assistant")[i % 2], "content": c} for i, c in enumerate(contents)]
    body = {"system": system, "messages": messages}
    want = _eager_checkpoints(body, info)
    for _ in range(2):  # the second time, the first text comes from the memo
        r = request_mod.parse(body, info)
        if not isinstance(r, request_mod.ParsedRequest):
            return  # too many cachePoints: a ValidationException (tests/test_emulator_validation.py)
        got = [(c.tokens, c.digest, c.ttl, [(t, s.digest()) for t, s in c.lookback]) for c in r.checkpoints]
        assert got == want


@settings(max_examples=40, deadline=None)
@given(st.lists(_TEXTS, min_size=2, max_size=8), st.integers(0, 3), st.sampled_from(["5m", "1h"]))
def test_a_growing_history_gives_the_digests_of_hashing_every_block(turns, bound, ttl):
    """An agent session: each request repeats the previous one's messages and adds a turn,
    a cachePoint after the newest user text. The states found in the memo (and, with a
    small bound, the memo cleared on the way) give what hashing every block gives."""
    info = lookup("anthropic.claude-haiku-4-5-20251001-v1:0")
    old = prefix_mod._STATES_MAX
    prefix_mod._STATES_MAX = bound or old
    try:
        cp = {"cachePoint": {"type": "default", "ttl": ttl}}
        history: list[dict] = []
        for i, text in enumerate(turns):
            question = {"role": "user", "content": [{"text": f"{i}: {text}"}]}
            messages = history + [{"role": "user", "content": question["content"] + [cp]}]
            body = {"system": [{"text": "S" * 1500}, cp], "messages": messages}
            r = request_mod.parse(body, info)
            got = [(c.tokens, c.digest, c.ttl, [(t, s.digest()) for t, s in c.lookback]) for c in r.checkpoints]
            assert got == _eager_checkpoints(body, info)
            history += [question, {"role": "assistant", "content": [{"text": text}]}]
    finally:
        prefix_mod._STATES_MAX = old
