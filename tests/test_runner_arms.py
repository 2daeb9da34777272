"""Arms get identical treatment: a difference between arms must be the arm's doing.

Each arm has its own `max_in_flight` slots and its own open-loop dispatcher, and the arm
that goes first at a shared arrival rotates. Through `loadgen simulate` (deterministic),
`loadgen run` (real HTTP, within a tolerance) and the runner on a fake Bedrock.
"""

from __future__ import annotations

import json
from collections import Counter
import textwrap
from itertools import groupby
from pathlib import Path

import pytest

from handler_transport import HAIKU, ok, run_virtual
from loadgen.commands.cli import main
from loadgen.engine.clock import VirtualClock
from loadgen.emulator.config import EmulatorConfig
from loadgen.api.setup import make_pricer
from loadgen.scenario import loads
from loadgen.api.session import ProbeState
from loadgen.api import virtual

# Two arms identical but for their names, a saturated in-flight bound (about 1.8 s per
# request, 3 slots, 0.7 arrivals/s per arm), latency without random draws.
TWINS = f"""
name = "twins"
seed = 5
duration = "5m"

[target]
max_in_flight = 3
time_scale = 30

[model]
id = "{HAIKU}"
max_tokens = 300
stream = true

[workload]
kind = "single"
prefix_tokens = 5000
question_tokens = {{ dist = "constant", value = 20 }}
output_tokens = {{ dist = "constant", value = 150 }}

[arrivals]
kind = "poisson"
rate = "0.7/s"

[emulator]
latency = {{ preset = "realistic", ttft_sigma = 0, tokens_per_s_sigma = 0, queue_max_s = 0 }}

[[arms]]
name = "a"
profile = "geo"

[[arms]]
name = "b"
profile = "geo"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def summary_of(out: Path) -> dict:
    (d,) = [d for d in out.iterdir() if d.is_dir()]
    return json.loads((d / "summary.json").read_text())


def test_two_identical_arms_get_identical_latency_in_simulate(tmp_path):
    # Before per-arm slots the first arm took the shared slots first:
    # e2e p50 4.34 s for a, 5.06 s for b.
    out = tmp_path / "out"
    assert main(["simulate", str(write(tmp_path, "twins.toml", TWINS)), "--out", str(out), "--quiet"]) == 0
    a, b = (summary_of(out)["arms"][n] for n in ("a", "b"))
    assert a["requests"] == b["requests"] and a["requests"]["sent"] > 150
    assert a["latency_ms"]["schedule_lag"]["p99"] > 500  # the bound did bind
    for metric in ("e2e", "ttft", "schedule_lag"):
        assert a["latency_ms"][metric] == b["latency_ms"][metric], metric
    assert a["cost_usd"] == b["cost_usd"]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment (an end before a start at the same time)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    now = most = 0
    for _, d in events:
        now += d
        most = max(most, now)
    return most


def test_in_run_every_arm_has_its_own_in_flight_slots(tmp_path):
    # real HTTP: 2 slots per arm, answers take 3 s of scenario time, 2 arrivals/s per arm
    text = (TWINS.replace("max_in_flight = 3", "max_in_flight = 2").replace('duration = "5m"', 'duration = "10s"')
            .replace("time_scale = 30", "time_scale = 10").replace('rate = "0.7/s"', 'rate = "2/s"')
            .replace('kind = "poisson"', 'kind = "constant"')
            .replace("queue_max_s = 0 }", "queue_max_s = 0, ttft_s = 3, tokens_per_s = 0, prefill_s_per_1k = 0, "
                                          "cache_read_s_per_1k = 0 }"))
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, "twins.toml", text)), "--out", str(out), "--quiet"]) == 0
    (d,) = [d for d in out.iterdir() if d.is_dir()]
    lines = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines()]
    spans = {n: [(x["start"], x["end"]) for x in lines if x["arm"] == n] for n in ("a", "b")}
    assert len(spans["a"]) == len(spans["b"]) == 20
    # one shared bound of 2 held both arms to 2 in flight together
    assert max_overlap(spans["a"]) == max_overlap(spans["b"]) == 2
    assert max_overlap(spans["a"] + spans["b"]) == 4


def test_identical_arms_sharing_a_quota_are_throttled_alike(tmp_path):
    # Both arms call the same model id, so they share one tokens-per-minute quota; the
    # arm that goes first at an arrival gets what is left of it. Before the rotation
    # the first arm got it every time: 945 ok vs 650.
    text = (TWINS.replace("max_in_flight = 3", "max_in_flight = 64").replace('duration = "5m"', 'duration = "10m"')
            .replace('rate = "0.7/s"', 'rate = "3/s"').replace('profile = "geo"', 'profile = "region"')
            .replace("queue_max_s = 0 }", "queue_max_s = 0 }\nquotas = { tpm = 150000 }"))
    sc = loads(textwrap.dedent(text), "quota.toml")
    seen: list = []
    virtual.run_virtual(ProbeState(sc, VirtualClock(), on_attempt=seen.append), make_pricer(sc),
             EmulatorConfig.from_mapping(sc.emulator), signals=False)
    a, b = (Counter(x.status for x in seen if x.arm == n) for n in ("a", "b"))
    assert a.total() == b.total() and a["throttled"] > 0.3 * a.total()  # the quota binds hard
    assert abs(a["ok"] - b["ok"]) <= 0.05 * max(a["ok"], b["ok"]), (a, b)


FAKE = f"""
name = "fake"
seed = 1
duration = "{{duration}}"

[target]
max_in_flight = {{bound}}

[model]
id = "{HAIKU}"
max_tokens = 50

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = {{{{ dist = "constant", value = 12 }}}}
output_tokens = {{{{ dist = "constant", value = 8 }}}}

[arrivals]
kind = "{{kind}}"
rate = "{{rate}}"
"""


def fake(*arms: str, duration: str = "20s", bound: int = 3, kind: str = "constant", rate: str = "2/s") -> str:
    return FAKE.format(duration=duration, bound=bound, kind=kind, rate=rate) + "".join(
        f'\n[[arms]]\nname = "{a}"\n' for a in arms)


def test_every_arm_gets_max_in_flight_slots_of_its_own():
    # 10 s per request, 2 arrivals/s: both arms stay saturated
    run = run_virtual(fake("a", "b"), lambda c: ok(after_s=10.0))
    assert run.transport.max_in_flight == {"a": 3, "b": 3}
    by_arm = {n: [x for x in run.attempts if x.arm == n] for n in ("a", "b")}
    assert len(by_arm["a"]) == len(by_arm["b"]) == 40
    # the same lag at every arrival for both arms
    assert [x.start - x.intended for x in by_arm["a"]] == [x.start - x.intended for x in by_arm["b"]]


def test_a_saturated_arm_does_not_hold_back_another():
    # "slow" answers in 30 s and fills its 2 slots; "fast" must still start on time
    run = run_virtual(fake("slow", "fast", bound=2), lambda c: ok(after_s=30.0 if c.arm == "slow" else 0.1))
    fast = [x for x in run.attempts if x.arm == "fast"]
    slow = [x for x in run.attempts if x.arm == "slow"]
    assert len(fast) == len(slow) == 40
    assert max(x.start - x.intended for x in fast) == 0.0
    assert max(x.start - x.intended for x in slow) > 100  # its own backlog, recorded as lag


def test_the_arm_that_goes_first_rotates_from_one_arrival_to_the_next():
    run = run_virtual(fake("a", "b", "c", kind="poisson", bound=8), lambda c: ok(after_s=0.5))
    orders = ["".join(c.arm for c in grp) for _, grp in groupby(run.calls, key=lambda c: c.start)]
    assert len(orders) > 30 and len(run.calls) == 3 * len(orders)
    rotations = ["abc", "bca", "cab"]
    assert orders == [rotations[i % 3] for i in range(len(orders))]


def test_session_starts_rotate_the_arm_that_goes_first():
    text = f"""
name = "sessions"
seed = 2
duration = "1m"

[target]
max_in_flight = 8

[model]
id = "{HAIKU}"
max_tokens = 50

[workload]
kind = "agent"
prefix_tokens = 64
turn_tokens = {{ dist = "constant", value = 20 }}
output_tokens = {{ dist = "constant", value = 8 }}
turns = 1

[sessions]
arrival = {{ kind = "constant", rate = "6/m" }}
think_time = {{ dist = "constant", value = "1s" }}

[[arms]]
name = "a"

[[arms]]
name = "b"
"""
    run = run_virtual(text, lambda c: ok(after_s=0.5))
    orders = ["".join(c.arm for c in grp) for _, grp in groupby(run.calls, key=lambda c: c.start)]
    assert orders == ["ab", "ba"] * 3
