"""Request bodies: exact prefix sizes, stable bytes, distinct arms, agent checkpoints."""

import dataclasses
import json
import random

import pytest

from loadgen.scenario import arrivals, distributions
from loadgen.engine.expectations import CacheExpectations
from loadgen.scenario import Arm, Model, Scenario, Sessions, Target, Workload
from loadgen.catalog.tokens import count_tokens
from loadgen.engine.workload import _WORDS, AgentSession, ArmWorkload, Request, Sizes, draw_sizes, filler, seeded_random

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def scenario(kind="single", prefix=6000, arms=None):
    arms = arms or (Arm(name="a", model_id=HAIKU, profile="geo"), Arm(name="b", model_id=HAIKU, profile="geo", cache_ttl="1h"))
    wl = Workload(kind=kind, prefix_tokens=prefix, output_tokens=distributions.Constant(value=100),
                  question_tokens=distributions.Constant(value=20) if kind == "single" else None,
                  turn_tokens=distributions.Constant(value=300) if kind == "agent" else None,
                  turns_min=3, turns_max=3)
    return Scenario(name="t", seed=7, duration=60.0, target=Target(), model=Model(id=HAIKU), workload=wl, arms=arms,
                    arrivals=arrivals.Constant(rate=1.0) if kind == "single" else None,
                    sessions=Sessions(arrivals.Constant(rate=1.0), distributions.Constant(value=60.0)) if kind == "agent" else None)


def test_prefix_has_exactly_the_requested_tokens_and_is_byte_stable():
    sc = scenario(prefix=5024)
    w1 = ArmWorkload(sc, sc.arms[0])
    w2 = ArmWorkload(sc, sc.arms[0])
    assert count_tokens(w1.prefix) == 5024
    assert w1.prefix == w2.prefix  # byte-identical across builds: the cache can hit


def test_arms_get_distinct_prefixes_but_same_sizes():
    sc = scenario()
    a, b = (ArmWorkload(sc, arm) for arm in sc.arms)
    assert a.prefix != b.prefix
    sizes = draw_sizes(sc, random.Random(1))
    ra, rb = a.single(3, sizes), b.single(3, sizes)
    assert ra.params["messages"] == rb.params["messages"]  # same question for both arms
    assert ra.input_tokens == rb.input_tokens


def test_single_request_shape_and_ttl():
    sc = scenario()
    req = ArmWorkload(sc, sc.arms[1]).single(0, Sizes(question_tokens=20, output_tokens=100))
    system = req.params["system"]
    assert system[-1] == {"cachePoint": {"type": "default", "ttl": "1h"}}
    text = req.params["messages"][0]["content"][0]["text"]
    assert "Reply with about 100 tokens." in text
    assert req.params["inferenceConfig"]["maxTokens"] == 512
    json.dumps(req.params)  # serialisable as botocore will send it


def test_cache_off_arm_sends_no_cache_point():
    sc = scenario(arms=(Arm(name="baseline", model_id=HAIKU, profile="geo", cache=False),))
    req = ArmWorkload(sc, sc.arms[0]).single(0, Sizes(question_tokens=20, output_tokens=10))
    assert all("cachePoint" not in b for b in req.params["system"])
    assert req.checkpoints == ()


def test_agent_history_grows_and_checkpoints_stay_within_bedrock_limit():
    sc = scenario(kind="agent")
    wl = ArmWorkload(sc, sc.arms[0])
    s = AgentSession(wl, 0)
    prev_tokens = 0
    for turn in range(6):
        req = s.next_request(Sizes(turn_tokens=300, output_tokens=50))
        n_cp = sum("cachePoint" in b for b in req.params["system"]) + sum(
            "cachePoint" in b for m in req.params["messages"] for b in m["content"])
        assert n_cp == len(req.checkpoints) <= 4
        assert req.input_tokens > prev_tokens
        prev_tokens = req.input_tokens
        roles = [m["role"] for m in req.params["messages"]]
        assert roles[0] == "user" and roles[-1] == "user"
        assert all(x != y for x, y in zip(roles, roles[1:]))  # alternating roles
        s.complete(True, "word " * 50)
    # turn 2+: the previous turn's checkpoint is in the request, so its prefix is read
    assert len(req.checkpoints) == 3


def test_failed_turn_is_not_added_to_history():
    sc = scenario(kind="agent")
    s = AgentSession(ArmWorkload(sc, sc.arms[0]), 0)
    s.next_request(Sizes(turn_tokens=300, output_tokens=50)); s.complete(True, "ok reply")
    s.next_request(Sizes(turn_tokens=300, output_tokens=50)); s.complete(False, "")
    req = s.next_request(Sizes(turn_tokens=300, output_tokens=50))
    assert len(req.params["messages"]) == 3  # user, assistant, new user


def test_expectations_follow_ttl_and_refresh_on_hit():
    sc = scenario(kind="agent")
    wl = ArmWorkload(sc, sc.arms[0])
    req = AgentSession(wl, 0).next_request(Sizes(turn_tokens=300, output_tokens=50))
    ex = CacheExpectations(min_tokens=4096)
    assert ex.predict(req.checkpoints, 0.0).state == "cold"
    ex.observe(req.checkpoints, 0.0)
    t = 0.0
    for _ in range(10):  # 4-minute gaps keep a 5m entry alive indefinitely
        t += 240.0
        assert ex.predict(req.checkpoints, t).state == "warm"
        ex.observe(req.checkpoints, t)
    assert ex.predict(req.checkpoints, t + 301.0).state == "cold"
    assert ex.predict(req.checkpoints, t + 100.0).gap_s == 100.0


def test_expectations_below_minimum_predicts_none():
    sc = scenario(prefix=1000)
    req = ArmWorkload(sc, sc.arms[0]).single(0, Sizes(question_tokens=20, output_tokens=10))
    assert CacheExpectations(min_tokens=4096).predict(req.checkpoints, 0).state == "none"


@pytest.mark.parametrize("seed", ["7:question:0", "1:sizes:123456", "", "ünïcode:turn:3:4", "x" * 500])
def test_seeded_random_is_random_random_of_the_same_string(seed):
    """Requests are defined by their string seeds: the fast path must give Random(seed)'s
    state exactly (and draw the same numbers, gauss included)."""
    fast, ref = seeded_random(seed), random.Random(seed)
    assert fast.getstate() == ref.getstate()
    assert [fast.gauss(0, 1) for _ in range(3)] + [fast.random()] == [ref.gauss(0, 1) for _ in range(3)] + [ref.random()]



@pytest.mark.parametrize("tokens", [0, 1, 7, 40, 999])
def test_filler_draws_what_random_choices_draws(tokens):
    """filler spells out rng.choices(_WORDS, k=...) for speed: the same text, and the rng
    left in the same state."""
    def reference(rng: random.Random, tokens: int) -> str:
        n = tokens * 4
        if n <= 0:
            return ""
        text = " ".join(rng.choices(_WORDS, k=n // 5 + 2))
        while len(text) < n:
            text += " " + " ".join(rng.choices(_WORDS, k=n // 5 + 2))
        return text[:n]

    a, b = random.Random(tokens), random.Random(tokens)
    assert filler(a, tokens) == reference(b, tokens) and a.getstate() == b.getstate()


def test_requests_and_sizes_equal_the_dataclasses_own():
    """single() and draw_sizes() build their frozen dataclasses in one step (engine/frozen.built):
    the same objects as the generated constructors make, fields in the same order."""
    sc = scenario()
    sizes = draw_sizes(sc, random.Random(5))
    assert sizes == Sizes(**vars(sizes)) and list(vars(sizes)) == list(vars(Sizes()))
    req = ArmWorkload(sc, sc.arms[1]).single(4, sizes)
    ref = Request(**vars(req))
    assert req == ref and list(vars(req)) == list(vars(ref)) and hash(req.checkpoints) == hash(ref.checkpoints)
    with pytest.raises(dataclasses.FrozenInstanceError):
        req.turn = 1  # type: ignore[misc]
