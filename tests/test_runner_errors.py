"""A transport that raises: the attempt is recorded with the exception's class and the run goes
on; a target failure writes the results and exits 3; only a cancellation is `Interrupted`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import anyio

from handler_transport import HAIKU, HandlerTransport, flat_pricer, ok, raises, run_virtual
from loadgen.commands.cli import main
from loadgen.engine.clock import VirtualClock
from loadgen.engine.runner import Runner
from loadgen.scenario import loads
from loadgen.engine.transport import BedrockTransport, TargetError

SCENARIO = f"""
name = "raising"
seed = 8
duration = "{{duration}}"

[target]
time_scale = 10

[model]
id = "{HAIKU}"
max_tokens = 64

[workload]
kind = "single"
prefix_tokens = 64
question_tokens = 12
output_tokens = 20

[arrivals]
kind = "constant"
rate = "1/s"

[retry]
policy = "exponential"
max_attempts = 3
on = ["throttled", "5xx", "timeout"]

[emulator]
latency = "fast"

[[arms]]
name = "a"

[[arms]]
name = "b"
"""


def test_an_unexpected_exception_is_the_attempts_outcome_and_the_run_goes_on():
    run = run_virtual(SCENARIO.format(duration="9s"),
                      lambda c: raises(RuntimeError("socket exploded"), after_s=0.2) if c.n % 3 == 0 else ok(0.5))
    assert len(run.attempts) == len(run.calls) == 18  # 9 arrivals x 2 arms, none retried
    failed = [a for a in run.attempts if a.status != "ok"]
    assert len(failed) == 6
    assert {(a.status, a.error_code, a.message) for a in failed} == {("error", "RuntimeError", "socket exploded")}
    assert all(abs(a.end - a.start - 0.2) < 1e-9 for a in failed)  # timed to when it failed
    assert run.runner.stop_reason is None and run.runner.target_error is None


def test_only_a_cancellation_is_recorded_as_interrupted():
    sc = loads(SCENARIO.format(duration="9s"), "<test>")
    clock = VirtualClock()
    attempts: list = []
    runner = Runner(sc, HandlerTransport(lambda c: ok(after_s=100.0), clock), clock,
                    sink=lambda a, costs: attempts.append(a), pricer=flat_pricer())

    async def main_() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            await clock.sleep(3.5)
            runner.abort()

    anyio.run(main_, backend_options={"loop_factory": clock.loop_factory})
    assert len(attempts) == 8  # arrivals at 0, 1, 2, 3 s, both arms, all in flight
    assert {(a.status, a.error_code) for a in attempts} == {("error", "Interrupted")}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "raising.toml"
    p.write_text(textwrap.dedent(text))
    return p


def results(out: Path) -> tuple[dict, list[dict]]:
    (d,) = [d for d in out.iterdir() if d.is_dir()]
    lines = [json.loads(x) for x in (d / "requests.jsonl").read_text().splitlines()]
    return json.loads((d / "summary.json").read_text()), lines


def patch_call(monkeypatch, fail):
    """Make BedrockTransport.call raise fail(n) (when not None) on its n-th call (0-based)."""
    real = BedrockTransport.call
    count = {"n": 0}

    async def call(self, params, *, stream, timeout, on_first_token=None, draw_key=None):
        n = count["n"]
        count["n"] += 1
        exc = fail(n)
        if exc is not None:
            raise exc
        return await real(self, params, stream=stream, timeout=timeout, on_first_token=on_first_token)

    monkeypatch.setattr(BedrockTransport, "call", call)


def test_run_records_an_exception_from_the_client_and_finishes(tmp_path, monkeypatch, capsys):
    # Before: recorded as Interrupted, then an ExceptionGroup traceback, no summary.
    patch_call(monkeypatch, lambda n: KeyError("no such header") if n % 4 == 1 else None)
    pools = []
    real_open = BedrockTransport.open.__func__

    def open_(cls, clock, **kw):
        pools.append(kw["max_connections"])
        return real_open(cls, clock, **kw)

    monkeypatch.setattr(BedrockTransport, "open", classmethod(open_))
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, SCENARIO.format(duration="8s"))), "--out", str(out), "--quiet"]) == 0
    summary, lines = results(out)
    assert pools == [2 * 64]  # the connection pool holds every arm's in-flight slots
    for name, arm in summary["arms"].items():
        r = arm["requests"]
        assert r["sent"] == r["ok"] + r["error"] == sum(1 for x in lines if x["arm"] == name)
    failed = [x for x in lines if x["status"] != "ok"]
    assert len(failed) == 4 and {x["error_code"] for x in failed} == {"KeyError"}
    assert len(lines) == 16 and summary["stopped"] == "completed"
    assert "Traceback" not in capsys.readouterr().err


def test_a_target_failure_mid_run_writes_the_results_and_exits_3(tmp_path, monkeypatch, capsys):
    patch_call(monkeypatch, lambda n: TargetError("credentials expired") if n >= 5 else None)
    out = tmp_path / "out"
    assert main(["run", str(write(tmp_path, SCENARIO.format(duration="60s"))), "--out", str(out), "--quiet"]) == 3
    summary, lines = results(out)
    assert summary["stopped"] == "target-failed"
    assert sum(a["requests"]["sent"] for a in summary["arms"].values()) == len(lines) >= 6
    assert len(lines) < 20  # dispatch stopped
    failed = [x for x in lines if x["status"] != "ok"]
    assert failed and {(x["status"], x["error_code"]) for x in failed} == {("error", "TargetError")}
    err = capsys.readouterr().err
    assert "target failed: credentials expired" in err and "Traceback" not in err
