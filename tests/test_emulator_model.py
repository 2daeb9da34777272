"""EmulatorModel without sockets: quota accounting, cache semantics, routing, faults."""

import random

import pytest

from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.errors import BedrockError
from loadgen.emulator.model import EmulatorModel, Plan
from loadgen.catalog.tokens import count_tokens

from emulator_fakes import HAIKU, NOVA_MICRO, SONNET37, US_HAIKU, US_SONNET37, FakeClock  # noqa: E402


def make(table=None, seed=1, region="us-east-1"):
    clock = FakeClock()
    cfg = EmulatorConfig.from_mapping({"latency": "fast", **(table or {})})
    return EmulatorModel(cfg, clock=clock, rng=random.Random(seed), region=region), clock


def body(prefix_tokens=5000, question="Hi. Reply with about 20 tokens.", ttl=None, max_tokens=100, **extra):
    cp = {"type": "default"}
    if ttl:
        cp["ttl"] = ttl
    system = [{"text": "p" * 4 * prefix_tokens}, {"cachePoint": cp}] if prefix_tokens else []
    b = {"system": system, "messages": [{"role": "user", "content": [{"text": question}]}],
         "inferenceConfig": {"maxTokens": max_tokens}}
    b.update(extra)
    return b


def ok(r) -> Plan:
    assert isinstance(r, Plan), r
    return r


def test_quota_reserves_input_plus_max_tokens_then_corrects_with_burndown_5():
    m, clock = make()
    p = ok(m.begin(US_HAIKU, body(prefix_tokens=5000, max_tokens=1000), stream=False))
    q_tokens = count_tokens("Hi. Reply with about 20 tokens.")
    assert m.quota_used(US_HAIKU) == 5000 + q_tokens + 1000          # reserved at start
    final = m.finish(p)
    # input (uncached) + cache writes + output x 5 (Claude 4.x burndown)
    assert final == q_tokens + 5000 + 20 * 5
    assert m.quota_used(US_HAIKU) == final
    # a cache read does not count
    clock.t = 1.0
    p2 = ok(m.begin(US_HAIKU, body(prefix_tokens=5000, max_tokens=1000), stream=False))
    assert p2.usage.cache_read == 5000
    assert m.finish(p2) == q_tokens + 20 * 5
    # finish is idempotent
    m.finish(p2)
    assert m.quota_used(US_HAIKU) == final + q_tokens + 100
    # the window slides: after 60 s the charges are gone
    clock.t = 62.0
    assert m.quota_used(US_HAIKU) == 0


def test_burndown_follows_the_catalog():
    # AWS's user guide lists Claude 3.7 Sonnet at 5x; "all other models 1:1" (Nova Micro)
    m, _ = make()
    p = ok(m.begin(US_SONNET37, body(prefix_tokens=0), stream=False))
    assert m.finish(p) == p.usage.input_tokens + 20 * 5
    p = ok(m.begin(NOVA_MICRO, body(prefix_tokens=0), stream=False))
    assert m.finish(p) == p.usage.input_tokens + 20


def test_tpm_throttles_and_recovers_after_window():
    m, clock = make({"quotas": {"tpm": 10_000}})
    b = body(prefix_tokens=0, max_tokens=4000)     # ~4008 reserved each
    p1 = ok(m.begin(HAIKU, b, stream=False))
    p2 = ok(m.begin(HAIKU, b, stream=False))
    r = m.begin(HAIKU, b, stream=False)
    assert isinstance(r, BedrockError) and (r.status, r.code) == (429, "ThrottlingException")
    m.finish(p1)
    m.finish(p2)                                  # corrected to ~108 each: room again
    ok(m.begin(HAIKU, b, stream=False))


def test_rpm_off_by_default_and_enforced_when_set():
    m, clock = make()
    for _ in range(50):
        m.finish(ok(m.begin(HAIKU, body(prefix_tokens=0), stream=False)))
    m, clock = make({"quotas": {"rpm": 3}})
    for _ in range(3):
        ok(m.begin(HAIKU, body(prefix_tokens=0), stream=False))
    r = m.begin(HAIKU, body(prefix_tokens=0), stream=False)
    assert isinstance(r, BedrockError) and r.code == "ThrottlingException"
    clock.t = 60.5
    ok(m.begin(HAIKU, body(prefix_tokens=0), stream=False))


def test_fixed_window_resets_on_the_minute():
    m, clock = make({"quotas": {"rpm": 2, "window": "fixed"}})
    clock.t = 50.0
    ok(m.begin(HAIKU, body(prefix_tokens=0), stream=False))
    ok(m.begin(HAIKU, body(prefix_tokens=0), stream=False))
    assert isinstance(m.begin(HAIKU, body(prefix_tokens=0), stream=False), BedrockError)
    clock.t = 60.0
    ok(m.begin(HAIKU, body(prefix_tokens=0), stream=False))


def test_per_scope_and_per_model_quota_overrides():
    cfg = EmulatorConfig.from_mapping({"quotas": {"tpm": 100, "geo": {"tpm": 200},
                                                  "models": {US_HAIKU: {"tpm": 300, "rpm": 5}}}})
    assert cfg.limit_for(HAIKU, "region").tpm == 100
    assert cfg.limit_for("us." + SONNET37, "geo").tpm == 200
    assert (cfg.limit_for(US_HAIKU, "geo").tpm, cfg.limit_for(US_HAIKU, "geo").rpm) == (300, 5)


def test_multi_checkpoint_reads_history_and_writes_new_turn():
    m, clock = make()
    hist = [{"role": "user", "content": [{"text": "u" * 4 * 2000}, {"cachePoint": {"type": "default"}}]},
            {"role": "assistant", "content": [{"text": "a" * 400}]}]
    b1 = body(prefix_tokens=5000)
    b1["messages"] = hist[:1]
    p1 = ok(m.begin(HAIKU, b1, stream=False))
    assert (p1.usage.cache_read, p1.usage.cache_write) == (0, 7000)
    clock.t = 10
    b2 = body(prefix_tokens=5000)
    b2["messages"] = hist + [{"role": "user", "content": [{"text": "n" * 4 * 500}, {"cachePoint": {"type": "default"}}]}]
    p2 = ok(m.begin(HAIKU, b2, stream=False))
    assert p2.usage.cache_read == 7000
    assert p2.usage.cache_write == 100 + 500
    assert p2.usage.input_tokens == 0
    assert p2.usage.cache_details == (("5m", 600),)


def test_cache_details_split_by_ttl_1h_first():
    m, _ = make()
    b = body(prefix_tokens=5000, ttl="1h")
    b["messages"][0]["content"] = [{"text": "q" * 4 * 300}, {"cachePoint": {"type": "default"}}]
    p = ok(m.begin(HAIKU, b, stream=False))
    assert p.usage.cache_details == (("1h", 5000), ("5m", 300))
    assert p.usage.to_wire()["cacheDetails"] == [{"ttl": "1h", "inputTokens": 5000}, {"ttl": "5m", "inputTokens": 300}]


def test_concurrent_identical_requests_both_write_until_first_token():
    m, clock = make({"latency": {"preset": "fast", "ttft_s": 1.0}})
    p1 = ok(m.begin(HAIKU, body(), stream=False))
    p2 = ok(m.begin(HAIKU, body(), stream=False))
    assert p1.usage.cache_write == p2.usage.cache_write == 5000
    clock.t = 1.5
    assert ok(m.begin(HAIKU, body(), stream=False)).usage.cache_read == 5000


def test_lru_bound_evicts_oldest_prefix():
    m, clock = make({"cache": {"max_entries": 2}})
    for ch in "abc":
        b = body()
        b["system"][0]["text"] = ch * 4 * 5000
        ok(m.begin(HAIKU, b, stream=False))
    assert len(m.cache) == 2 and m.cache.evictions == 1
    b = body()
    b["system"][0]["text"] = "a" * 4 * 5000
    assert ok(m.begin(HAIKU, b, stream=False)).usage.cache_write == 5000


@pytest.mark.parametrize("mutate, needle", [
    (lambda b: b.update(messages=[]), "at least one message"),
    (lambda b: b["messages"][0].update(role="assistant"), "start with a user message"),
    (lambda b: b["messages"].append({"role": "user", "content": [{"text": "x"}]}), "alternate"),
    (lambda b: b["messages"][0].update(content=[]), "non-empty list"),
    (lambda b: b["messages"][0].update(role="system"), "'user' or 'assistant'"),
    (lambda b: b["inferenceConfig"].update(maxTokens=64001), "exceeds the model limit of 64000"),
    (lambda b: b["messages"][0]["content"].extend([{"cachePoint": {"type": "default"}}] * 4), "maximum of 4"),
    (lambda b: b["system"][1]["cachePoint"].update(ttl="2h"), "expected one of 5m, 1h"),
])
def test_validation_errors(mutate, needle):
    m, _ = make()
    b = body()
    mutate(b)
    r = m.begin(HAIKU, b, stream=False)
    assert isinstance(r, BedrockError) and (r.status, r.code) == (400, "ValidationException")
    assert needle in r.message


def test_1h_ttl_on_claude_37_is_rejected_and_unknown_model_invalid():
    m, _ = make()
    r = m.begin(US_SONNET37, body(ttl="1h"), stream=False)
    assert isinstance(r, BedrockError) and r.code == "ValidationException" and "not supported" in r.message
    r = m.begin("anthropic.nope-v1:0", body(), stream=False)
    assert isinstance(r, BedrockError) and "model identifier is invalid" in r.message
    r = m.begin("global." + SONNET37, body(), stream=False)
    assert isinstance(r, BedrockError) and r.code == "ValidationException"


def test_output_length_hint_max_tokens_and_stop_sequence():
    m, _ = make()
    p = ok(m.begin(HAIKU, body(question="Please reply with ABOUT 77 tokens"), stream=False))
    assert p.usage.output_tokens == 77 == count_tokens(p.text) and p.stop_reason == "end_turn"
    p = ok(m.begin(HAIKU, body(question="Reply with about 500 tokens", max_tokens=50), stream=False))
    assert p.usage.output_tokens == 50 == count_tokens(p.text) and p.stop_reason == "max_tokens"
    b = body(question="Reply with about 100 tokens")
    b["inferenceConfig"]["stopSequences"] = ["filler"]
    p = ok(m.begin(HAIKU, b, stream=False))
    assert p.stop_reason == "stop_sequence" and "filler" not in p.text
    assert p.usage.output_tokens == count_tokens(p.text) < 100


def test_default_output_distribution_is_seeded():
    draws = []
    for _ in range(2):
        m, _ = make(seed=42)
        draws.append([ok(m.begin(HAIKU, body(question="hello", max_tokens=64000), stream=False)).usage.output_tokens
                      for _ in range(20)])
    assert draws[0] == draws[1] and len(set(draws[0])) > 5


def test_geo_profile_spills_over_when_source_region_is_busy():
    m, clock = make({"routing": {"region_capacity_tpm": 20_000, "spill_at": 0.8}})
    served = [ok(m.begin(US_HAIKU, body(prefix_tokens=0, max_tokens=4000), stream=False)).served_region
              for _ in range(8)]
    assert served[:3] == ["us-east-1"] * 3            # source preferred while it has headroom
    assert set(served[3:]) <= {"us-east-2", "us-west-2"} and len(set(served[3:])) == 2
    # a bare id has one Region: it throttles on that Region's capacity
    m, _ = make({"routing": {"region_capacity_tpm": 10_000}})
    ok(m.begin(HAIKU, body(prefix_tokens=0, max_tokens=4000), stream=False))
    ok(m.begin(HAIKU, body(prefix_tokens=0, max_tokens=4000), stream=False))
    r = m.begin(HAIKU, body(prefix_tokens=0, max_tokens=4000), stream=False)
    assert isinstance(r, BedrockError) and r.code == "ThrottlingException"


def test_cache_is_per_serving_region_by_default():
    m, clock = make({"routing": {"region_capacity_tpm": 20_000, "spill_at": 0.5}})
    first = ok(m.begin(US_HAIKU, body(max_tokens=100), stream=False))
    assert first.served_region == "us-east-1" and first.usage.cache_write == 5000
    clock.t = 1
    second = ok(m.begin(US_HAIKU, body(max_tokens=100), stream=False))   # source now above spill_at
    assert second.served_region != "us-east-1" and second.usage.cache_write == 5000


def test_brownout_hits_bare_id_but_profile_routes_around_it():
    table = {"faults": {"brownouts": [{"region": "us-east-1", "start": "1m", "end": "2m"}]}}
    m, clock = make(table)
    ok(m.begin(HAIKU, body(), stream=False))
    clock.t = 90
    r = m.begin(HAIKU, body(), stream=False)
    assert isinstance(r, BedrockError) and r.code == "ServiceUnavailableException" and r.status == 503
    p = ok(m.begin(US_HAIKU, body(), stream=False))
    assert p.served_region != "us-east-1"
    clock.t = 121
    ok(m.begin(HAIKU, body(), stream=False))


def test_faults_reproducible_by_seed_and_rates_roughly_right():
    table = {"faults": {"error_rates": {"InternalServerException": 0.1, "ModelNotReadyException": 0.1},
                        "mid_stream_rate": 0.2}}

    def run(seed):
        m, clock = make(table, seed=seed)
        out = []
        for i in range(400):
            clock.t = i
            r = m.begin(HAIKU, body(prefix_tokens=0), stream=True)
            out.append(r.code if isinstance(r, BedrockError) else (r.fault.code if r.fault else "ok"))
        return out

    a, b, c = run(7), run(7), run(8)
    assert a == b and a != c
    assert 20 < a.count("InternalServerException") < 65
    assert 20 < a.count("ModelNotReadyException") < 65
    assert 35 < a.count("modelStreamErrorException") < 100


def test_realistic_latency_is_haiku_like():
    m, _ = make({"latency": "realistic"})
    plans = [ok(m.begin(HAIKU, body(prefix_tokens=0, question="Reply with about 300 tokens", max_tokens=1000),
                        stream=True)) for _ in range(200)]
    ttfts = sorted(p.ttft_s for p in plans)
    assert 0.4 < ttfts[100] < 1.0
    speed = sorted(300 / (p.duration_s - p.ttft_s) for p in plans)
    assert 90 < speed[100] < 160
    d = plans[0].deltas()
    assert d[0][0] == pytest.approx(plans[0].ttft_s) and d[-1][0] <= plans[0].duration_s
    assert all(a[0] <= b[0] for a, b in zip(d, d[1:]))
    assert "".join(t for _, t in d) == plans[0].text
