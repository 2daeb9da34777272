"""Cache lookback: a cachePoint also reads the longest prefix an earlier request wrote at a
content-block position up to 20 positions back (its own included), as Bedrock does for
Claude (models.toml cache_lookback_blocks; docs/emulator.md "Prompt cache").

Real aiobotocore clients against the emulator over 127.0.0.1, the model without
sockets, loadgen's own prediction of it, and `simulate` on scenario files.
"""

from __future__ import annotations

import dataclasses
import json
import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loadgen.catalog import models
from loadgen.commands.cli import main
from loadgen.emulator.config import EmulatorConfig
from loadgen.emulator.model import EmulatorModel, Plan
from loadgen.engine.expectations import CacheExpectations
from loadgen.engine.record import observed_cache_state
from loadgen.scenario import load
from loadgen.catalog.tokens import count_tokens
from loadgen.engine.workload import AgentSession, ArmWorkload, Sizes

from emulator_fakes import HAIKU, US_HAIKU, FakeClock  # noqa: E402
from test_emulator_server import emulator, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SONNET45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"   # profile-only: called via us.
NOVA_PRO = "amazon.nova-pro-v1:0"


def no_lookback(monkeypatch, blocks: int = 0) -> None:
    """Every catalog model with `blocks` lookback positions (0: like Nova, explicit only)."""
    patched = {k: dataclasses.replace(v, cache_lookback_blocks=blocks) for k, v in models.catalog().items()}
    monkeypatch.setattr(models, "catalog", lambda: patched)


# -- the catalog ----------------------------------------------------------------


def test_every_claude_model_with_caching_looks_back_20_positions():
    claude = [i for i in models.catalog().values() if i.family == "claude" and i.cache_ttls]
    assert claude
    assert {i.base_id: i.cache_lookback_blocks for i in claude} == {i.base_id: 20 for i in claude}


# -- a real client moving one cachePoint forward each turn -----------------------


def user(text: str, *more: str, cache: bool = True) -> dict:
    content = [{"text": t} for t in (text, *more)]
    if cache:
        content.append({"cachePoint": {"type": "default"}})
    return {"role": "user", "content": content}


def test_client_moving_one_cache_point_reads_the_previous_turn_from_turn_2():
    """The agent-client pattern: no cachePoint on the system prompt, one at the end of the
    latest user message only (earlier ones dropped). Turn 1 writes everything; from turn 2
    on the previous turn's prefix is read and only the new part (reply + new question) is
    written, in usage and in cacheDetails."""
    system = [{"text": "s" * 4 * 5000}]           # 5000 tokens, no cachePoint

    async def go():
        async with emulator() as (c, clock, _):
            history: list[dict] = []
            prev_prefix = 0
            for turn in range(4):
                clock.t = turn * 60.0
                question = f"Turn {turn}: what next? " + "q" * 4 * 300 + " Reply with about 40 tokens."
                r = await c.converse(modelId=US_HAIKU, system=system, messages=[*history, user(question)],
                                     inferenceConfig={"maxTokens": 200})
                u = r["usage"]
                total = 5000 + sum(count_tokens(b["text"]) for m in history for b in m["content"]) \
                    + count_tokens(question)
                assert u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"] == total
                assert u["inputTokens"] == 0                       # everything is before the cachePoint
                assert u["cacheReadInputTokens"] == prev_prefix    # turn 1: 0; then the previous turn's prefix
                assert u["cacheWriteInputTokens"] == total - prev_prefix
                assert u["cacheDetails"] == [{"ttl": "5m", "inputTokens": total - prev_prefix}]
                if turn:
                    assert 0 < u["cacheWriteInputTokens"] < 400     # only the reply and the new question
                prev_prefix = total
                history += [user(question, cache=False),
                            {"role": "assistant", "content": r["output"]["message"]["content"]}]
    run(go())


@pytest.mark.parametrize("blocks,reads", [(18, True), (19, False)])
def test_lookback_window_is_20_positions_counting_the_cache_point_itself(blocks, reads):
    """Turn 1 writes at position 2 (system text, user text). Turn 2 adds the reply and a user
    message of `blocks` text blocks: its cachePoint is at position 3 + blocks. Bedrock checks
    20 positions, the cachePoint's own first: 21..2 reaches the turn-1 entry, 22..3 does not
    (Anthropic's example: "The turn-2 entry at block 15 is one position outside the window")."""
    system = [{"text": "s" * 4 * 5000}]

    async def go():
        async with emulator() as (c, clock, _):
            first = user("First question. Reply with about 10 tokens.")
            r1 = await c.converse(modelId=US_HAIKU, system=system, messages=[first],
                                  inferenceConfig={"maxTokens": 100})
            written = r1["usage"]["cacheWriteInputTokens"]
            assert written > 5000
            clock.t = 30.0
            parts = [f"part {i}" for i in range(blocks - 1)] + ["Now answer. Reply with about 10 tokens."]
            msgs = [user("First question. Reply with about 10 tokens.", cache=False),
                    {"role": "assistant", "content": r1["output"]["message"]["content"]}, user(*parts)]
            r2 = await c.converse(modelId=US_HAIKU, system=system, messages=msgs,
                                  inferenceConfig={"maxTokens": 100})
            u = r2["usage"]
            assert u["cacheReadInputTokens"] == (written if reads else 0)
            total = u["inputTokens"] + u["cacheReadInputTokens"] + u["cacheWriteInputTokens"]
            assert u["cacheWriteInputTokens"] == total - u["cacheReadInputTokens"]
    run(go())


# -- the model without sockets: what counts as a block position ------------------


def make(seed: int = 1) -> tuple[EmulatorModel, FakeClock]:
    clock = FakeClock()
    cfg = EmulatorConfig.from_mapping({"latency": "fast"})
    return EmulatorModel(cfg, clock=clock, rng=random.Random(seed)), clock


def ok(r) -> Plan:
    assert isinstance(r, Plan), r
    return r


CP = {"cachePoint": {"type": "default"}}


def tool(i: int, tokens: int = 10) -> dict:
    return {"toolSpec": {"name": f"tool{i}", "description": "d" * 4 * tokens,
                         "inputSchema": {"json": {"type": "object"}}}}


@pytest.mark.parametrize("system_blocks,reads", [(19, True), (20, False)])
def test_tools_and_system_blocks_are_positions(system_blocks, reads):
    """Tool specs and system blocks count as positions like message blocks; cachePoints do not.
    The first request writes at the end of 2 tools (position 2, about 1200 tokens: Sonnet
    4.5's minimum is 1024); the second has the same tools without that cachePoint and
    `system_blocks` system blocks then one cachePoint: position 2 + system_blocks, whose 20
    positions reach back to position 2 with 19 system blocks, to 3 with 20."""
    m, clock = make()
    tools = [tool(0, 600), tool(1, 600)]
    msgs = [{"role": "user", "content": [{"text": "Hi. Reply with about 5 tokens."}]}]
    p1 = ok(m.begin(SONNET45, {"toolConfig": {"tools": [*tools, CP]}, "messages": msgs}, stream=False))
    assert p1.usage.cache_write > 1024
    clock.t = 10.0
    system = [{"text": f"rule {i}"} for i in range(system_blocks)] + [CP]
    p2 = ok(m.begin(SONNET45, {"toolConfig": {"tools": tools}, "system": system, "messages": msgs}, stream=False))
    rules = sum(count_tokens(f"rule {i}") for i in range(system_blocks))
    assert p2.usage.cache_read == (p1.usage.cache_write if reads else 0)
    assert p2.usage.cache_write == (rules if reads else p1.usage.cache_write + rules)


def test_a_message_boundary_is_one_position_whatever_follows():
    """The prefix ending a message has one digest whether or not more messages follow it
    (the next message's role marker belongs to its first block), so the lookback finds it."""
    m, clock = make()
    sys_ = [{"text": "s" * 4 * 5000}]
    a = [{"role": "user", "content": [{"text": "one"}, CP]}]
    ok(m.begin(HAIKU, {"system": sys_, "messages": a}, stream=False))
    clock.t = 1.0
    b = [{"role": "user", "content": [{"text": "one"}]}, {"role": "assistant", "content": [{"text": "two"}]},
         {"role": "user", "content": [{"text": "three"}, CP]}]
    p = ok(m.begin(HAIKU, {"system": sys_, "messages": b}, stream=False))
    assert p.usage.cache_read == 5000 + count_tokens("one")
    # a different role for the same text is a different prefix
    clock.t = 2.0
    c = [{"role": "user", "content": [{"text": "one"}]}, {"role": "assistant", "content": [{"text": "one"}, CP]}]
    ok(m.begin(HAIKU, {"system": sys_, "messages": c}, stream=False))
    clock.t = 3.0
    d = [{"role": "user", "content": [{"text": "one"}]}, {"role": "assistant", "content": [{"text": "one"}]},
         {"role": "user", "content": [{"text": "x"}, CP]}]
    p = ok(m.begin(HAIKU, {"system": sys_, "messages": d}, stream=False))
    assert p.usage.cache_read == 5000 + 2 * count_tokens("one")


def test_lookback_hit_refreshes_the_entry_it_read_and_expired_entries_are_not_read():
    m, clock = make()
    sys_ = [{"text": "s" * 4 * 5000}]
    u1 = {"role": "user", "content": [{"text": "one"}]}
    a1 = {"role": "assistant", "content": [{"text": "two"}]}
    ok(m.begin(HAIKU, {"system": sys_, "messages": [{"role": "user", "content": [{"text": "one"}, CP]}]},
               stream=False))
    # 4-minute gaps, each a new question after the same turn: only the lookback reads the
    # turn-1 entry, and every read restarts its 5-minute TTL
    for i in range(1, 4):
        clock.t = 240.0 * i
        p = ok(m.begin(HAIKU, {"system": sys_, "messages": [
            u1, a1, {"role": "user", "content": [{"text": f"q{i}"}, CP]}]}, stream=False))
        assert p.usage.cache_read == 5000 + count_tokens("one"), i
    clock.t = 240.0 * 3 + 301.0
    p = ok(m.begin(HAIKU, {"system": sys_, "messages": [
        u1, a1, {"role": "user", "content": [{"text": "late"}, CP]}]}, stream=False))
    assert p.usage.cache_read == 0


def test_lookback_reaching_past_a_dead_breakpoint_still_writes_that_breakpoint():
    """The last breakpoint's window reaches past an earlier breakpoint with no live entry
    to the system prompt's: the system prompt is read and BOTH later breakpoints are
    written, each segment at its own TTL (docs/emulator.md "Prompt cache"), so the next
    request reads the middle one. (The emulator once wrote only the last breakpoint.)"""
    m, clock = make()
    one_h = {"cachePoint": {"type": "default", "ttl": "1h"}}
    sys_ = [{"text": "s" * 4 * 5000}, one_h]
    ok(m.begin(HAIKU, {"system": sys_, "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
               stream=False))
    clock.t = 1.0
    u1 = {"role": "user", "content": [{"text": "one"}]}
    a1 = {"role": "assistant", "content": [{"text": "two"}]}
    p = ok(m.begin(HAIKU, {"system": sys_, "messages": [
        {"role": "user", "content": [{"text": "one"}, one_h]}, a1,
        {"role": "user", "content": [{"text": "three"}, CP]}]}, stream=False))
    one, rest = count_tokens("one"), count_tokens("two") + count_tokens("three")
    assert (p.usage.cache_read, p.usage.cache_write) == (5000, one + rest)
    assert p.usage.cache_details == (("1h", one), ("5m", rest))
    clock.t = 2.0
    p = ok(m.begin(HAIKU, {"system": sys_, "messages": [u1, a1, {"role": "user", "content": [{"text": "x"}, CP]}]},
                   stream=False))
    assert p.usage.cache_read == 5000 + one


@pytest.mark.parametrize("model", [NOVA_PRO, HAIKU])
def test_model_without_lookback_reads_only_at_its_checkpoints(monkeypatch, model):
    """Nova (cache_lookback_blocks = 0), and Claude with its lookback switched off: moving
    the cachePoint re-writes every turn."""
    assert models.lookup(NOVA_PRO).cache_lookback_blocks == 0
    if model == HAIKU:
        no_lookback(monkeypatch)
    m, clock = make()
    sys_ = [{"text": "s" * 4 * 5000}]
    ok(m.begin(model, {"system": sys_, "messages": [{"role": "user", "content": [{"text": "one"}, CP]}]},
               stream=False))
    clock.t = 10.0
    p = ok(m.begin(model, {"system": sys_, "messages": [
        {"role": "user", "content": [{"text": "one"}]}, {"role": "assistant", "content": [{"text": "two"}]},
        {"role": "user", "content": [{"text": "three"}, CP]}]}, stream=False))
    assert p.usage.cache_read == 0
    assert p.usage.cache_write == 5000 + count_tokens("one") + count_tokens("two") + count_tokens("three")


# -- loadgen's prediction agrees with the emulator -------------------------------


SCENARIO = """
name = "lookback"
seed = 3
duration = "2h"

[model]
id = "{model}"
max_tokens = 300

[workload]
kind = "agent"
prefix_tokens = {prefix}
turn_tokens = {{ dist = "lognormal", median = 200, p90 = 600 }}
output_tokens = {{ dist = "lognormal", median = 80, p90 = 200 }}
turns = {{ min = 3, max = 12 }}
checkpoint_pattern = "{pattern}"

[sessions]
arrival = {{ kind = "poisson", rate = "30/h" }}
think_time = {{ dist = "lognormal", median = "3m", p90 = "8m" }}

[[arms]]
name = "a"
cache_ttl = "{ttl}"
profile = "geo"
"""


def scenario_file(tmp_path: Path, *, pattern: str = "moving", ttl: str = "5m", prefix: int = 5000,
                  model: str = HAIKU, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(SCENARIO.format(pattern=pattern, ttl=ttl, prefix=prefix, model=model)))
    return p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.sampled_from(["kept", "moving"]), ttl=st.sampled_from(["5m", "1h"]),
       blocks=st.sampled_from([0, 2, 3, 5, 20]), prefix=st.sampled_from([1000, 5000]),
       steps=st.lists(st.tuples(st.integers(0, 1), st.floats(0, 900), st.integers(1, 1500), st.booleans()),
                      min_size=1, max_size=30))
@example(pattern="kept", ttl="5m", blocks=5, prefix=5000,
         steps=[(1, 0, 1, False), (0, 300, 1, False), (1, 0, 1, True), (1, 0, 1, False)])
def test_prediction_reads_what_the_emulator_reads(tmp_path, pattern, ttl, blocks, prefix, steps):
    """Two interleaved sessions, random gaps, turn sizes and failed turns (the response began,
    so the prompt was cached, but the turn is dropped from the history), with lookback windows
    of several sizes: loadgen predicts exactly the tokens the emulator reads, and the state."""
    with pytest.MonkeyPatch.context() as mp:
        no_lookback(mp, blocks)
        sc = load(str(scenario_file(tmp_path, pattern=pattern, ttl=ttl, prefix=prefix)))
        arm = sc.arms[0]
        wl = ArmWorkload(sc, arm)
        sessions = [AgentSession(wl, 0), AgentSession(wl, 1)]
        m, clock = make()
        ex = CacheExpectations(wl.info.cache_min_tokens)
        t = 0.0
        for who, gap, turn_tokens, fails in steps:
            t += gap
            clock.t = t
            s = sessions[who]
            req = s.next_request(Sizes(turn_tokens=turn_tokens, output_tokens=30))
            pred = ex.predict(req.checkpoints, t)
            w = ex.sent(req.checkpoints, t)
            body = {k: v for k, v in req.params.items() if k != "modelId"}
            plan = ok(m.begin(req.model_id, body, stream=True))
            w.began(t + plan.ttft_s)
            pred = w.finished("error" if fails else "ok", t + plan.duration_s, pred)
            m.finish(plan)
            assert pred.read == plan.usage.cache_read, (pattern, blocks, s.turn)
            observed = observed_cache_state(plan.usage.cache_read, plan.usage.cache_write, pred.expected_read)
            assert pred.state == observed or pred.race
            est = ex.usage_estimate(req.checkpoints, req.input_tokens, pred.read)
            assert (est["cacheReadInputTokens"], est["cacheWriteInputTokens"], est["inputTokens"]) == (
                plan.usage.cache_read, plan.usage.cache_write, plan.usage.input_tokens)
            s.complete(not fails, plan.text)
            t += plan.duration_s


# -- simulate on scenario files --------------------------------------------------


def simulate(path: Path, out: Path) -> dict:
    assert main(["simulate", str(path), "--out", str(out), "--quiet"]) == 0
    (d,) = [x for x in out.iterdir() if x.is_dir()]
    return json.loads((d / "summary.json").read_text())


def test_simulate_moving_pattern_reads_the_history_with_zero_mismatches(tmp_path, monkeypatch):
    moving = simulate(scenario_file(tmp_path, pattern="moving"), tmp_path / "moving")["arms"]["a"]
    kept = simulate(scenario_file(tmp_path, pattern="kept", name="k.toml"), tmp_path / "kept")["arms"]["a"]
    assert moving["requests"]["ok"] == moving["requests"]["sent"] > 100
    assert moving["cache"]["mismatch"]["total"] == 0
    assert moving["cache"]["warm"] > moving["requests"]["sent"] / 2
    # Claude's lookback reads the previous turn's prefix: the same bill as keeping its checkpoint
    assert moving["tokens"] == kept["tokens"] and moving["cache"] == kept["cache"]
    assert moving["cost_usd"] == kept["cost_usd"]
    # without a lookback (explicit checkpoints only, like Nova) moving re-writes the history
    no_lookback(monkeypatch)
    bare = simulate(scenario_file(tmp_path, pattern="moving", name="n.toml"), tmp_path / "bare")["arms"]["a"]
    assert bare["cache"]["mismatch"]["total"] == 0
    assert bare["tokens"]["cache_write"] > 2 * moving["tokens"]["cache_write"]
    assert bare["cost_usd"]["total"] > moving["cost_usd"]["total"]


def test_kept_pattern_figures_do_not_depend_on_the_lookback(tmp_path, monkeypatch):
    """scenarios/slow-agent.toml keeps the previous turn's checkpoint: the lookback finds
    nothing its explicit checkpoints do not, so its figures are the same with and without."""
    path = ROOT / "scenarios" / "slow-agent.toml"
    with_lb = simulate(path, tmp_path / "with")
    no_lookback(monkeypatch)
    without = simulate(path, tmp_path / "without")
    for name, arm in with_lb["arms"].items():
        other = without["arms"][name]
        assert arm["cache"]["mismatch"]["total"] == 0
        for key in ("requests", "cache", "tokens", "cost_usd"):
            assert arm[key] == other[key], (name, key)


# -- the scenario key -------------------------------------------------------------


def test_workload_builds_one_moving_checkpoint_after_the_system_prompt(tmp_path):
    sc = load(str(scenario_file(tmp_path, pattern="moving")))
    s = AgentSession(ArmWorkload(sc, sc.arms[0]), 0)
    for turn in range(4):
        req = s.next_request(Sizes(turn_tokens=100, output_tokens=10))
        where = [("system", i) for i, b in enumerate(req.params["system"]) if "cachePoint" in b] + [
            (j, i) for j, msg in enumerate(req.params["messages"]) for i, b in enumerate(msg["content"])
            if "cachePoint" in b]
        last = len(req.params["messages"]) - 1
        assert where == [("system", 1), (last, 1)]
        assert len(req.checkpoints) == 2
        # the previous turns' checkpoints (and the system prompt's) are the lookback candidates
        assert [c.key for c in req.checkpoints[-1].lookback] == [
            ("session", "a", 0, t) for t in range(turn)] + [("system", "a")]
        s.complete(True, "fine")


@pytest.mark.parametrize("line,message", [
    ('checkpoint_pattern = "keep"', 'workload.checkpoint_pattern: expected one of "kept", "moving", '
                                    "got 'keep'; did you mean 'kept'?"),
    ("checkpoint_pattern = 2", 'workload.checkpoint_pattern: expected one of "kept", "moving", got an integer 2'),
])
def test_bad_checkpoint_pattern_exits_2_with_file_line_key(tmp_path, capsys, line, message):
    p = scenario_file(tmp_path)
    text = p.read_text().replace('checkpoint_pattern = "moving"', line)
    p.write_text(text)
    n = text.splitlines().index(line) + 1
    assert main(["validate", str(p)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{p}:{n}: {message}" in err


def test_checkpoint_pattern_on_a_single_turn_workload_is_refused(tmp_path, capsys):
    p = tmp_path / "single.toml"
    p.write_text(textwrap.dedent(f"""
        name = "single"
        duration = "1m"
        [model]
        id = "{HAIKU}"
        [workload]
        kind = "single"
        prefix_tokens = 5000
        output_tokens = 20
        checkpoint_pattern = "moving"
        [arrivals]
        kind = "constant"
        rate = "1/s"
        [[arms]]
        name = "a"
        profile = "geo"
    """))
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"{p}:10: workload.checkpoint_pattern: only for kind = \"agent\"" in err


def test_validate_plans_the_moving_pattern_by_the_models_lookback(tmp_path, monkeypatch):
    from loadgen.api.plan import plan

    def expected(pattern: str) -> float:
        sc = load(str(scenario_file(tmp_path, pattern=pattern, name=f"{pattern}.toml")))
        return plan(sc).arms[0].cost_expected_usd

    kept, moving = expected("kept"), expected("moving")
    assert moving == kept  # Claude's lookback reaches the previous turn
    no_lookback(monkeypatch)
    assert expected("kept") == kept and expected("moving") > 1.5 * kept


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["moving", "kept"])
def test_run_against_the_emulator_has_no_mismatch_with_either_pattern(tmp_path, pattern):
    """`loadgen run`: real aiobotocore clients over 127.0.0.1 on the warp clock. Warm turns
    with a history (an earlier turn of the session answered) read it: more than the
    5000-token system prompt. A 1-hour TTL: with 5 minutes, a think time within a fraction
    of a second of the TTL can go either way on a warp clock that magnifies real HTTP time
    100x (both patterns alike). The same magnification makes a stall of the process longer
    than 1.2 s (a loaded machine) a timeout of the 120 s request timeout; a failed turn
    is dropped from the history, so the session's next turn may read only the system
    prompt, and the prediction says so (no mismatch)."""
    out = tmp_path / "res"
    path = scenario_file(tmp_path, pattern=pattern, ttl="1h")
    path.write_text(path.read_text() + '\n[target]\ntime_scale = 100\n')
    assert main(["run", str(path), "--out", str(out), "--duration", "40m", "--quiet"]) == 0
    (d,) = [x for x in out.iterdir() if x.is_dir()]
    arm = json.loads((d / "summary.json").read_text())["arms"]["a"]
    lines = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines() if x.strip()]
    assert arm["cache"]["mismatch"]["total"] == 0
    answered: set[tuple[int, int]] = set()  # (session, turn) of every ok turn
    later = []                              # warm turns after an answered one of their session
    for x in sorted(lines, key=lambda x: (x["session"], x["turn"], x["attempt"])):
        if x["cache_state"] == "warm" and any((x["session"], t) in answered for t in range(x["turn"])):
            later.append(x)
        if x["status"] == "ok":
            answered.add((x["session"], x["turn"]))
    assert len(later) > 10
    assert all(x["cache_read"] > 5000 for x in later), [x for x in later if x["cache_read"] <= 5000]
