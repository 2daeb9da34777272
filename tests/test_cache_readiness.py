"""When a written prefix becomes readable: the emulator and loadgen's cache prediction agree.

A cache entry becomes available only once the response that wrote it has begun
(Anthropic's prompt-caching page; docs/emulator.md). Clean runs must show no
`cache.mismatch`; what the client cannot know is a race, counted apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadgen.commands.cli import main
from loadgen.emulator.cache import PromptCache
from loadgen.engine.expectations import CacheExpectations, likely_cause
from loadgen.results.metrics import ArmInfo, Metrics
from loadgen.engine.record import Attempt
from loadgen.engine.workload import Checkpoint

ROOT = Path(__file__).resolve().parent.parent
STEADY_CHAT = ROOT / "scenarios" / "steady-chat.toml"


def _summary(out: Path) -> dict:
    (d,) = list(out.iterdir())
    return json.loads((d / "summary.json").read_text())


def test_clean_steady_chat_simulate_has_no_cache_mismatch(tmp_path):
    # before: 5 / 6 / 6 cold->warm mismatches in the first seconds (region / geo / global)
    assert main(["simulate", str(STEADY_CHAT), "--duration", "5s", "--out", str(tmp_path), "--quiet"]) == 0
    for name, arm in _summary(tmp_path)["arms"].items():
        cache = arm["cache"]
        assert cache["mismatch"]["total"] == 0, (name, cache)
        # the warm-up really had concurrent requests writing the same prefix
        assert cache["cold"] >= 2 and cache["race"] >= 1, (name, cache)


@pytest.mark.slow
def test_clean_steady_chat_run_has_no_cache_mismatch(tmp_path):
    # real aiobotocore clients against the built-in emulator over 127.0.0.1 (warp x1)
    assert main(["run", str(STEADY_CHAT), "--duration", "4s", "--out", str(tmp_path), "--quiet"]) == 0
    for name, arm in _summary(tmp_path)["arms"].items():
        assert arm["requests"]["ok"] >= 10
        assert arm["cache"]["mismatch"]["total"] == 0, (name, arm["cache"])


def test_an_entry_is_readable_from_the_first_response_that_begins():
    cache = PromptCache()
    cache.write("k", 0.0, 300.0, ready_at=5.0)   # a long prefill ...
    cache.write("k", 1.0, 300.0, ready_at=2.0)   # ... overtaken by a second write of the same prefix
    assert not cache.alive("k", 1.9)
    assert cache.alive("k", 2.0)


CP = (Checkpoint(("system", "a"), 5000, "5m"),)


def test_a_write_is_readable_only_once_its_response_began():
    ex = CacheExpectations(min_tokens=4096)
    w = ex.sent(CP, 0.0)
    w.began(0.8)  # known ahead (in-process transport), applied from 0.8 on
    p = ex.predict(CP, 0.5)
    assert (p.state, p.race) == ("cold", True)  # in flight: could go either way
    p = ex.predict(CP, 0.8)
    assert (p.state, p.read) == ("warm", 5000)
    w.finished("ok", 2.0, p)
    assert ex.predict(CP, 299.9).state == "warm" and ex.predict(CP, 300.0).state == "cold"  # TTL from the send


def test_a_failure_before_any_reply_may_have_written_but_a_throttle_did_not():
    ex = CacheExpectations(min_tokens=4096)
    p = ex.predict(CP, 0.0)
    ex.sent(CP, 0.0).finished("throttled", 0.1, p)
    assert ex.predict(CP, 1.0).race is False
    ex.sent(CP, 1.0).finished("timeout", 31.0, p)
    p = ex.predict(CP, 40.0)
    assert (p.state, p.race) == ("cold", True)
    assert ex.predict(CP, 301.1).race is False  # its entry, if any, expired


def test_a_request_overtaken_by_another_response_is_a_race():
    ex = CacheExpectations(min_tokens=4096)
    p1 = ex.predict(CP, 0.0)
    w1 = ex.sent(CP, 0.0)       # sent first, but the service may receive it late
    p2 = ex.predict(CP, 0.1)
    w2 = ex.sent(CP, 0.1)
    w2.began(0.7)
    w1.began(0.9)
    assert w2.finished("ok", 1.0, p2).race is True  # sent while w1 was in flight
    assert w1.finished("ok", 1.2, p1).race is True  # w2's response began before its own
    assert p1.race is False


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 600), st.floats(0.05, 3), st.floats(0, 5), st.integers(0, 1),
                          st.sampled_from(["ok", "ok", "ok", "error", "throttled", "timeout"])),
                min_size=1, max_size=40))
def test_prediction_agrees_with_the_emulator_cache_except_in_a_race(attempts):
    """The emulator's PromptCache and the client model, fed the same attempts (send time, time to
    first token, duration, prefix, outcome): every prediction equals the emulator's state, or
    is flagged as a race and the emulator read (never a silent disagreement)."""
    keys = [(Checkpoint(("system", "a"), 5000, "5m"),), (Checkpoint(("system", "b"), 6000, "1h"),)]
    ttl = {0: 300.0, 1: 3600.0}
    cache = PromptCache()
    ex = CacheExpectations(min_tokens=4096)
    events = []  # (time, order, kind, index): sends and ends interleaved in time order
    for i, (start, ttft, dur, k, status) in enumerate(attempts):
        # failures: a throttle is refused before processing; an error or timeout here ends
        # before the response began, but the service processed the prompt and wrote it
        end = start + (ttft + dur if status == "ok" else ttft / 2)
        events += [(start, 1, "send", i), (end, 0, "end", i)]
    pending = {}
    for t, _, kind, i in sorted(events):
        start, ttft, dur, k, status = attempts[i]
        key = ("m", "r", k)
        if kind == "send":
            pred = ex.predict(keys[k], t)
            w = ex.sent(keys[k], t)
            if status == "throttled":
                observed = None
            elif cache.alive(key, t):
                cache.touch(key, t)
                observed = "warm"
            else:
                cache.write(key, t, ttl[k], t + ttft)
                observed = "cold"
            if status == "ok":
                w.began(t + ttft)
            pending[i] = (w, pred, observed)
        else:
            w, pred, observed = pending.pop(i)
            pred = w.finished(status, t, pred)
            if observed is not None:
                assert pred.state == observed or (pred.race and observed == "warm"), (i, pred, observed)


def test_a_race_that_read_is_not_a_mismatch():
    info = ArmInfo("a", "us.anthropic.claude-haiku-4-5-20251001-v1:0", "geo", "5m")
    m = Metrics([info])
    for race, state in ((True, "warm"), (True, "cold"), (False, "warm")):
        m.record(Attempt(arm="a", session=0, turn=0, attempt=1, intended=0.0, start=0.0, first_token=0.5,
                         end=1.0, status="ok", error_code=None, model_id=info.model_id, profile="geo",
                         region="us-east-1", cache_state=state, cache_predicted="cold", cache_race=race))
    c = m.summary({})["arms"]["a"]["cache"]
    assert c["race"] == 2
    assert c["mismatch"]["by_pair"] == {"cold->warm": 1}
    assert "failed" not in likely_cause("cold", "warm", profile="region")
