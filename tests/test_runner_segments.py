"""Execution segments: worker i of n sends a deterministic share of the same seeded
schedule (whole sessions, a stripe of the arrivals), and the n shares together are
exactly the whole schedule. The seam a multi-process or multi-machine run builds on."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler_transport import HAIKU, HandlerTransport, Call, Reply, flat_pricer, ok
from loadgen.catalog.models import lookup
from loadgen.engine import schedule
from loadgen.engine.clock import VirtualClock
from loadgen.engine.expectations import CacheExpectations
from loadgen.engine.runner import Runner
from loadgen.engine.schedule import Segment
from loadgen.scenario import load, loads

ARRIVALS = {
    "constant": '{ kind = "constant", rate = "3/s" }',
    "poisson": '{ kind = "poisson", rate = "4/s" }',
    "stages": '{ kind = "stages", start_rate = "0/s", stages = [{ duration = "10s", target = "6/s" }, '
              '{ duration = "20s", target = "1/s" }] }',
    "bursts": '{ kind = "bursts", every = "5s", size = 7, spread = "1s" }',
    "trace": '{ kind = "trace", file = "trace.csv" }',
}

SINGLE = """
name = "seg"
seed = {seed}
duration = "30s"

[model]
id = "{model}"
max_tokens = 300

[workload]
kind = "single"
prefix_tokens = 2000
question_tokens = {{ dist = "uniform", low = 10, high = 90 }}
output_tokens = {{ dist = "lognormal", median = 100, p90 = 300 }}

arrivals = {arrivals}

[[arms]]
name = "a"
"""

AGENT = """
name = "seg"
seed = {seed}
duration = "{duration}"

[target]
max_in_flight = 1000

[model]
id = "{model}"
max_tokens = 300

[workload]
kind = "agent"
prefix_tokens = 5000
turn_tokens = {{ dist = "lognormal", median = 200, p90 = 600 }}
output_tokens = {{ dist = "lognormal", median = 80, p90 = 200 }}
turns = {{ min = 2, max = 6 }}

[sessions]
arrival = {arrival}
think_time = {{ dist = "lognormal", median = "20s", p90 = "2m" }}

[[arms]]
name = "ttl-5m"
cache_ttl = "5m"

[[arms]]
name = "ttl-1h"
cache_ttl = "1h"
"""


def single(tmp_path: Path, kind: str, seed: int):
    (tmp_path / "trace.csv").write_text("offset,input_tokens,output_tokens\n"
                                        + "".join(f"{i * 0.7:.1f},{2000 + 7 * i},{20 + i}\n" for i in range(40)))
    text = SINGLE.format(seed=seed, model=HAIKU, arrivals=ARRIVALS[kind]).replace("\narrivals = ", "\n[arrivals]\n_ = ")
    # the process as a table: [arrivals] with its keys (an inline table is for sessions.arrival)
    inline = ARRIVALS[kind].strip("{} ")
    text = text.replace(f"_ = {ARRIVALS[kind]}", "\n".join(_split_inline(inline)))
    p = tmp_path / "s.toml"
    p.write_text(textwrap.dedent(text))
    return load(str(p))


def _split_inline(body: str) -> list[str]:
    """`kind = "x", rate = "3/s", stages = [...]` -> one `key = value` line each."""
    out, depth, cur = [], 0, ""
    for ch in body:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return out + [cur.strip()]


def agent(kind: str, seed: int, duration: str = "1m", arrival: str | None = None):
    arrival = arrival or ARRIVALS[kind]
    return loads(textwrap.dedent(AGENT.format(seed=seed, model=HAIKU, duration=duration, arrival=arrival)))


# a few sessions a minute: a session's first turn finds the system prefix another session cached
SPARSE = {"poisson": '{ kind = "poisson", rate = "8/m" }', "constant": '{ kind = "constant", rate = "6/m" }'}


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(kind=st.sampled_from(sorted(ARRIVALS)), seed=st.integers(0, 10_000), n=st.integers(1, 5))
def test_open_loop_segments_together_are_the_whole_schedule(tmp_path, kind, seed, n):
    sc = single(tmp_path, kind, seed)
    whole = list(schedule.open_loop(sc))
    parts = [list(schedule.open_loop(sc, Segment(i, n))) for i in range(n)]
    union = sorted((r for part in parts for r in part), key=lambda r: r[0])
    assert union == whole                                  # same indexes, times and sizes, none twice
    for i, part in enumerate(parts):
        assert all(k % n == i for k, _, _ in part)          # striped: an even share of every stretch


@SETTINGS
@given(kind=st.sampled_from(sorted(set(ARRIVALS) - {"trace"})), seed=st.integers(0, 10_000), n=st.integers(1, 5))
def test_session_segments_hold_whole_sessions_and_together_all_of_them(kind, seed, n):
    sc = agent(kind, seed)

    def turns(index: int) -> tuple:
        d = schedule.SessionDraws(sc, index)
        return tuple((d.sizes(), d.think_time()) for _ in range(d.turns))

    whole = [(i, start, turns(i)) for i, start in schedule.sessions(sc)]
    assert [s for _, s, _ in whole] == list(schedule.session_starts(sc))
    parts = [[(i, start, turns(i)) for i, start in schedule.sessions(sc, Segment(j, n))] for j in range(n)]
    assert sorted((s for part in parts for s in part), key=lambda s: s[0]) == whole


def test_a_segment_must_be_one_of_its_count():
    for bad in ((1, 1), (-1, 2), (0, 0)):
        with pytest.raises(ValueError):
            Segment(*bad)


# -- the runner: n segments against one target send what the whole run sends ----------


def handler(call: Call) -> Reply:
    """A deterministic fake Bedrock: latency from the request's own text, so the answer
    does not depend on the order in which runners happen to send."""
    text = call.params["messages"][-1]["content"][0]["text"]
    return ok(after_s=0.5 + (sum(map(ord, text)) % 97) / 20, ttft_s=0.3)


def run_segments(sc, n: int, *, share_cache_model: bool = True) -> list[tuple]:
    """The attempts of n segment runners driven together on one clock and one target."""
    clock = VirtualClock()
    transport = HandlerTransport(handler, clock)
    attempts: list = []
    shared = {a.name: CacheExpectations(lookup(a.model_id).cache_min_tokens) for a in sc.arms}
    runners = [Runner(sc, transport, clock, sink=lambda a, c: attempts.append(a), pricer=flat_pricer(),
                      wall_clock=lambda: 0.0, segment=Segment(i, n),
                      expectations=shared if share_cache_model else None) for i in range(n)]
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for r in runners:
                tg.start_soon(r.run)

    anyio.run(main, backend_options={"loop_factory": clock.loop_factory})
    return sorted((a.arm, a.session, a.turn, a.attempt, a.intended, a.start, a.end, a.cache_predicted,
                   a.cache_race, a.gap_s) for a in attempts)


@pytest.mark.parametrize("kind", ["poisson", "constant"])
def test_segments_send_the_whole_runs_requests_with_its_cache_predictions(kind):
    sc = agent(kind, seed=11, duration="3m", arrival=SPARSE[kind])
    whole = run_segments(sc, 1)
    assert len(whole) > 20 and {p[7] for p in whole} >= {"warm", "cold"}
    for n in (2, 3):
        assert run_segments(sc, n) == whole


def test_a_segment_alone_cannot_know_the_shared_prefix_others_cached():
    """Why segments share the cache model: a session's first turn reads the system prefix
    another segment's session cached; a segment on its own would predict it cold."""
    sc = agent("poisson", seed=11, duration="3m", arrival=SPARSE["poisson"])
    whole = run_segments(sc, 1)
    alone = run_segments(sc, 3, share_cache_model=False)
    assert [p[:7] for p in alone] == [p[:7] for p in whole]   # the same requests at the same times
    assert [p[7] for p in alone] != [p[7] for p in whole]     # but other predictions
