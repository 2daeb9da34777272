"""The event loop of loadgen's real-clock processes: uvloop unless opted out, and clocks
that never wake early on it (its timers keep whole milliseconds)."""

import asyncio
import textwrap

import pytest

from loadgen.commands.cli import main
from loadgen.engine import event_loop
from loadgen.engine.clock import RealClock, SharedClock

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed here (Windows, or left out)")


def _loop_module() -> str:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__

    return event_loop.run(main)


def test_uvloop_is_the_default_and_asyncio_the_opt_out(monkeypatch):
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert _loop_module().startswith("uvloop")
    monkeypatch.setenv(event_loop.ENV_VAR, "asyncio")
    assert event_loop.loop_name() == "asyncio"
    assert _loop_module().startswith("asyncio")
    monkeypatch.setenv(event_loop.ENV_VAR, "something-else")  # unknown: the default
    assert event_loop.loop_name() == "uvloop"


def test_loadgen_run_drives_its_requests_on_uvloop(tmp_path, monkeypatch):
    """`loadgen run` (the command, in-process) runs its event loop through event_loop.run."""
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)
    seen = []
    real_run = event_loop.run

    def spy(fn, *args):
        async def wrapped():
            seen.append(type(asyncio.get_running_loop()).__module__)
            return await fn(*args)
        return real_run(wrapped)

    monkeypatch.setattr(event_loop, "run", spy)
    scenario = tmp_path / "s.toml"
    scenario.write_text(textwrap.dedent(f"""\
        name = "loop"
        seed = 1
        duration = "3s"

        [model]
        id = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
        max_tokens = 16
        stream = false

        [workload]
        kind = "single"
        prefix_tokens = 64
        question_tokens = 8
        output_tokens = 8

        [arrivals]
        kind = "constant"
        rate = "2/s"

        [emulator]
        latency = "fast"

        [[arms]]
        name = "a"
        """))
    assert main(["run", str(scenario), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert len(seen) == 1 and seen[0].startswith("uvloop")
    (d,) = list((tmp_path / "out").iterdir())
    assert sum(1 for _ in open(d / "requests.jsonl")) == 6


@pytest.mark.parametrize("make", [RealClock, lambda: SharedClock(1.0, 0.0)], ids=["real", "shared"])
def test_clocks_never_wake_early_on_uvloop(monkeypatch, make):
    """uvloop rounds a timer to whole milliseconds and may fire it early; sleep_until
    must still return only once now() >= t (a request sent early would be a lag hidden
    below zero), and late by about a tick, not more."""
    monkeypatch.delenv(event_loop.ENV_VAR, raising=False)

    async def main():
        c = make()
        base = c.now()
        late = []
        for k in range(1, 200):
            t = base + k * 0.00073  # never a whole millisecond: every sleep ends mid-tick
            await c.sleep_until(t)
            late.append(c.now() - t)
        return late

    late = event_loop.run(main)
    assert min(late) >= 0
    assert sorted(late)[len(late) // 2] < 0.005  # a tick or so; a loaded machine stretches it


def test_an_unknown_loop_name_is_the_default_with_a_warning(caplog):
    with caplog.at_level("WARNING", logger="loadgen.engine.event_loop"):
        assert event_loop.loop_name({"LOADGEN_EVENT_LOOP": "uvlop"}) == event_loop.loop_name({})
    assert "LOADGEN_EVENT_LOOP='uvlop' is not one of uvloop, asyncio" in caplog.text
