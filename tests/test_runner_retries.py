"""Retries, backoff and the cost limit, through the real Runner on a fake Bedrock in virtual time."""

from __future__ import annotations

from collections import defaultdict

from handler_transport import HAIKU, Call, Reply, error, flat_pricer, ok, run_virtual, throttle
from loadgen.engine import schedule
from loadgen.engine.runner import Limits
from loadgen.scenario import loads
from loadgen.engine.workload import ArmWorkload

BASE = f"""
name = "retries"
seed = 4
duration = "{{duration}}"

[target]
max_in_flight = {{bound}}
request_timeout = "10s"

[model]
id = "{HAIKU}"
max_tokens = 50

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = {{{{ dist = "constant", value = 12 }}}}
output_tokens = {{{{ dist = "constant", value = 8 }}}}

[arrivals]
kind = "constant"
rate = "{{rate}}"

[retry]
{{retry}}
"""


def scenario(retry: str, *arms: str, duration: str = "1s", rate: str = "1/s", bound: int = 64,
             cache_ttl: str = "5m") -> str:
    return BASE.format(duration=duration, rate=rate, bound=bound, retry=retry) + "".join(
        f'\n[[arms]]\nname = "{a}"\ncache_ttl = "{cache_ttl}"\n' for a in arms)

# what the fake Bedrock answers, by arm
FAILURES = {
    "throttle": throttle(after_s=0.2),
    "e500": error("InternalServerException", 500, after_s=0.3),
    "e503": error("ServiceUnavailableException", 503, after_s=0.3),
    "timeout": ok(after_s=60.0),  # later than request_timeout = 10s
    "e400": error("ValidationException", 400),
    "e403": error("AccessDeniedException", 403),
    "e404": error("ResourceNotFoundException", 404),
    "fine": ok(after_s=0.5),
}


def by_arm(attempts) -> dict[str, list]:
    out: dict[str, list] = defaultdict(list)
    for a in attempts:
        out[a.arm].append(a)
    return out


def test_retries_timeouts_5xx_and_throttles_per_the_policy_never_4xx():
    retry = 'policy = "exponential"\nmax_attempts = 4\nbase = "1s"\ncap = "4s"\non = ["throttled", "5xx", "timeout"]'
    run = run_virtual(scenario(retry, *FAILURES), lambda c: FAILURES[c.arm])
    arms = by_arm(run.attempts)
    for name in ("throttle", "e500", "e503", "timeout"):
        got = arms[name]
        assert [a.attempt for a in got] == [1, 2, 3, 4], name
        assert len({a.intended for a in got}) == 1  # a retry keeps the original intended start
    assert [a.status for a in arms["timeout"]] == ["timeout"] * 4
    assert all(abs(a.end - a.start - 10.0) < 1e-9 for a in arms["timeout"])  # timed at its deadline
    for name in ("e400", "e403", "e404", "fine"):
        assert [a.attempt for a in arms[name]] == [1], name
    assert len(run.calls) == len(run.attempts) == 4 * 4 + 4


def test_on_says_what_is_retried():
    retry = 'policy = "exponential"\nmax_attempts = 3\non = ["throttled"]'
    run = run_virtual(scenario(retry, "throttle", "e500", "timeout"), lambda c: FAILURES[c.arm])
    arms = by_arm(run.attempts)
    assert len(arms["throttle"]) == 3
    assert len(arms["e500"]) == len(arms["timeout"]) == 1


def test_policy_off_never_retries():
    run = run_virtual(scenario('policy = "off"', "throttle", "e500"), lambda c: FAILURES[c.arm])
    assert [a.attempt for a in run.attempts] == [1, 1]


def gaps(run) -> dict[int, list[float]]:
    """Backoff waited before attempt k+1, by k: its start minus attempt k's end."""
    out: dict[int, list[float]] = defaultdict(list)
    per_request: dict[tuple, list] = defaultdict(list)
    for a in run.attempts:
        per_request[(a.arm, a.session)].append(a)
    for tries in per_request.values():
        tries.sort(key=lambda a: a.attempt)
        for prev, nxt in zip(tries, tries[1:]):
            out[prev.attempt].append(nxt.start - prev.end)
    return out


def test_exponential_backoff_without_jitter_doubles_up_to_the_cap():
    retry = 'policy = "exponential"\nmax_attempts = 5\nbase = "1s"\ncap = "3s"\njitter = false'
    run = run_virtual(scenario(retry, "throttle"), lambda c: FAILURES[c.arm])
    (tries,) = [sorted(run.attempts, key=lambda a: a.attempt)]
    waits = [round(b.start - a.end, 9) for a, b in zip(tries, tries[1:])]
    assert waits == [1.0, 2.0, 3.0, 3.0]
    last = tries[-1]
    # the caller's latency includes every attempt and every wait
    assert round(last.end - last.intended, 9) == round(5 * 0.2 + 1 + 2 + 3 + 3, 9)


def test_exponential_backoff_with_full_jitter_spreads_over_zero_to_the_doubled_base():
    retry = 'policy = "exponential"\nmax_attempts = 4\nbase = "2s"\ncap = "5s"'
    run = run_virtual(scenario(retry, "throttle", duration="100s", rate="2/s"), lambda c: throttle(after_s=0.1))
    g = gaps(run)
    assert len(g[1]) == len(g[2]) == len(g[3]) == 200
    for k, ceiling in ((1, 2.0), (2, 4.0), (3, 5.0)):  # min(cap, base * 2^(k-1))
        waits = g[k]
        assert all(0.0 <= w <= ceiling for w in waits), k
        # full jitter: uniform over [0, ceiling], not bunched at either end
        assert min(waits) < 0.1 * ceiling and max(waits) > 0.9 * ceiling, k
        assert 0.4 * ceiling < sum(waits) / len(waits) < 0.6 * ceiling, k
    # seeded per request: the same scenario waits the same
    again = run_virtual(scenario(retry, "throttle", duration="100s", rate="2/s"), lambda c: throttle(after_s=0.1))
    assert gaps(again) == g


def test_fixed_backoff_waits_base_each_time():
    retry = 'policy = "fixed"\nmax_attempts = 3\nbase = "1.5s"'
    run = run_virtual(scenario(retry, "e503"), lambda c: FAILURES[c.arm])
    tries = sorted(run.attempts, key=lambda a: a.attempt)
    assert [round(b.start - a.end, 9) for a, b in zip(tries, tries[1:])] == [1.5, 1.5]


def test_a_retry_that_succeeds_ends_the_request():
    retry = 'policy = "exponential"\nmax_attempts = 5\nbase = "1s"'
    seen: dict[str, int] = defaultdict(int)

    def flaky(c: Call) -> Reply:
        seen[c.arm] += 1
        return throttle() if seen[c.arm] <= 2 else ok()

    run = run_virtual(scenario(retry, "fine"), flaky)
    assert [(a.attempt, a.status) for a in run.attempts] == [(1, "throttled"), (2, "throttled"), (3, "ok")]


# -- the cost limit ------------------------------------------------------------

def worst_case(sc_text: str) -> tuple[dict, float]:
    """The usage of the most expensive answer Bedrock could give to the scenario's
    requests (all input written to a 1-hour cache, max_tokens out), and its cost."""
    sc = loads(sc_text, "<test>")
    _, _, sizes = next(schedule.open_loop(sc))
    req = ArmWorkload(sc, sc.arms[0]).single(0, sizes)
    usage = {"inputTokens": 0, "cacheReadInputTokens": 0, "cacheWriteInputTokens": req.input_tokens,
             "outputTokens": req.max_tokens, "cacheDetails": [{"ttl": "1h", "inputTokens": req.input_tokens}]}
    return usage, flat_pricer()(HAIKU, usage, "1h")["total"]


def test_max_cost_binds_before_requests_sent_together_could_pass_it():
    # Two arms, 10 arrivals/s, answers after 8 s: many requests are admitted before any
    # is billed. Every answer costs the worst case W; the limit is 3.5 W, so exactly 3
    # requests fit. Before reserving at admission, both arms' requests at one arrival
    # counted on the same headroom and 4 were sent (4 W > 3.5 W).
    text = scenario('policy = "off"', "a", "b", duration="10s", rate="10/s", cache_ttl="1h")
    usage, w = worst_case(text)
    limit = 3.5 * w
    run = run_virtual(text, lambda c: ok(after_s=8.0, usage=usage), limits=Limits(max_cost_usd=limit))
    total = sum(c["total"] for c in run.costs)
    assert len(run.calls) == 3
    assert total <= limit and abs(total - 3 * w) < 1e-12
    assert run.runner.stop_reason == "max-cost"


def test_max_cost_stops_close_to_the_limit_and_never_past_it():
    # one at a time: the run goes on while one more worst case fits, then stops
    text = scenario('policy = "off"', "a", duration="10m", rate="1/s", bound=1, cache_ttl="1h")
    usage, w = worst_case(text)
    for limit in (10.5 * w, 7 * w, 0.99 * w):
        run = run_virtual(text, lambda c: ok(after_s=0.5, usage=usage), limits=Limits(max_cost_usd=limit))
        total = sum(c["total"] for c in run.costs)
        assert total <= limit
        assert total > limit - w - 1e-12  # it did not stop early
        assert run.runner.stop_reason == "max-cost"


def test_max_cost_holds_with_retries():
    # each request is throttled once, then answered at the worst case W; requests one
    # at a time (every 10 s), the limit 3.5 W: three requests, six attempts
    retry = 'policy = "fixed"\nmax_attempts = 3\nbase = "1s"'
    text = scenario(retry, "a", duration="10m", rate="6/m", bound=1, cache_ttl="1h")
    usage, w = worst_case(text)
    n = {"calls": 0}

    def answer(c: Call) -> Reply:
        n["calls"] += 1
        return throttle() if n["calls"] % 2 else ok(after_s=0.5, usage=usage)

    limit = 3.5 * w
    run = run_virtual(text, answer, limits=Limits(max_cost_usd=limit))
    total = sum(c["total"] for c in run.costs)
    assert abs(total - 3 * w) < 1e-12 and total <= limit
    assert [(a.attempt, a.status) for a in run.attempts] == [(1, "throttled"), (2, "ok")] * 3
    assert run.runner.stop_reason == "max-cost"
