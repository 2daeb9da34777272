"""Entry points: `load(path)` and `loads(text)` turn a scenario file into a Scenario,
or raise ScenarioError listing every problem as `file:line: key: message`."""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

from loadgen._toml import toml
from loadgen.scenario.arms import (NAME_MAX_CHARS, cache_warnings, check_context, check_prices,
                                   max_tokens_warnings, name_ok, read_arms, read_pricing, read_thresholds)
from loadgen.scenario.batch import check_scenario
from loadgen.scenario.fields import Ctx
from loadgen.scenario.outputs import read_outputs
from loadgen.scenario.schema import Scenario, ScenarioError
from loadgen.scenario.sections import read_model, read_retry, read_sessions, read_target, read_workload
from loadgen.scenario.toml_lines import deep_line, key_lines, nesting_depth, syntax_error
from loadgen.scenario.traffic import read_process

TOP_KEYS = ("name", "seed", "duration", "description", "target", "model", "workload", "arrivals",
            "sessions", "retry", "arms", "thresholds", "pricing", "emulator", "outputs")

# Tables and arrays inside each other: the deepest a valid scenario goes is about 4
# (thresholds.arms.<arm>[i], emulator tables); far deeper input is an accident or an attack
# and would exhaust Python's recursion limit in the parser.
MAX_NESTING = 16


# Checks the [emulator] table: takes the mapping, raises ValueError on a problem. The
# emulator owns those keys and sits above this package, so callers pass its check in
# (loadgen.emulator.config.EmulatorConfig.from_mapping); without one the table is kept as is.
EmulatorCheck = Callable[[Mapping[str, Any]], object]


def _check_emulator(ctx: Ctx, table: Mapping[str, Any], check: EmulatorCheck) -> None:
    """Ask the emulator's check about `table`, and place its error on the key's line.

    The emulator's errors are structured (loadgen.emulator.config.ConfigError): `.problems`
    holds every problem found, each with `.path` (the keys and indexes under [emulator])
    and `.message` (the text); each goes to ctx, so they are listed with the rest of the
    scenario's, in line order. An error without a path is placed at [emulator] itself.
    """
    try:
        check(table)
    except ValueError as e:
        for one in getattr(e, "problems", (e,)):
            path = getattr(one, "path", None)
            ctx.err(("emulator",) + (path if isinstance(path, tuple) else ()), getattr(one, "message", str(one)))


# --------------------------------------------------------------------------- entry points

def load(path: str, *, check_emulator: EmulatorCheck | None = None) -> Scenario:
    """Read, parse and validate a scenario file; ScenarioError on any problem.

    Relative file references (empirical data, traces) are resolved against the
    scenario file's folder. `check_emulator` validates the [emulator] table (see
    EmulatorCheck); callers that run the scenario pass EmulatorConfig.from_mapping.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ScenarioError([f"{path}: cannot read scenario file: {e.strerror or e}"]) from None
    return loads(decode(data, path), path, check_emulator=check_emulator)


def decode(data: bytes, path: str) -> str:
    """The text of a scenario file: TOML is UTF-8 (toml.io, "Spec"); anything else is a
    ScenarioError naming the file and the line of the first bad byte."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ScenarioError([f"{path}:1: not a UTF-8 text file: it starts with a UTF-16 byte-order mark; "
                             "TOML files must be UTF-8 (save it again as UTF-8)"])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        what = ("a binary file (it holds NUL bytes)" if b"\x00" in data
                else f"not UTF-8 text (byte 0x{data[e.start]:02x})")
        raise ScenarioError([f"{path}:{line}: {what}; TOML scenario files must be UTF-8 text"]) from None


def loads(text: str, path: str = "<scenario>", *, check_emulator: EmulatorCheck | None = None) -> Scenario:
    """Parse scenario text; `path` names it in messages and anchors relative file references.
    `check_emulator`: as for `load`."""
    try:
        raw = toml.loads(text)
    except toml.TOMLDecodeError as e:
        raise ScenarioError([syntax_error(path, text, e)]) from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raw = None
    if raw is None or nesting_depth(raw) > MAX_NESTING:
        raise ScenarioError([f"{path}:{deep_line(text, MAX_NESTING)}: tables and arrays nested more than "
                             f"{MAX_NESTING} deep; a scenario needs at most a few levels"])
    ctx = Ctx(path, key_lines(text))
    scenario = _build(ctx, raw, text, check_emulator)
    if ctx.problems:
        raise ScenarioError([m for _, m in sorted(ctx.problems, key=lambda x: x[0])])
    assert scenario is not None
    return scenario


def _build(ctx: Ctx, raw: Mapping[str, Any], text: str,
           check_emulator: EmulatorCheck | None) -> Scenario | None:
    ctx.keys(raw, (), TOP_KEYS)
    # without a name key, the file's stem names the run, made plain (it is not the user's typing)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(os.path.basename(ctx.path))[0])
    stem = stem.lstrip("._-")[:NAME_MAX_CHARS] or "scenario"
    name = ctx.str_(raw, (), "name", stem)
    if name is not None and not name_ok(ctx, ("name",), name):
        name = stem
    seed = ctx.int_(raw, (), "seed", 0)
    duration = ctx.duration(raw, (), "duration")
    description = ctx.str_(raw, (), "description", "")
    target = read_target(ctx, raw)
    model, info = read_model(ctx, raw)
    workload = read_workload(ctx, raw)

    arrivals = None
    if "arrivals" in raw:
        arrivals = read_process(ctx, raw["arrivals"], ("arrivals",), header=True)
    sessions = read_sessions(ctx, raw)
    has_a, has_s = "arrivals" in raw, "sessions" in raw
    if has_a and has_s:
        ctx.err(("sessions",), "a scenario has either [arrivals] (open loop, single-turn requests) or "
                               "[sessions] (closed-loop agent sessions), not both")
    elif not has_a and not has_s:
        ctx.err(("workload",) if "workload" in raw else ("arrivals",), "missing the traffic shape: add [arrivals] "
                "(open loop, kind = \"single\") or [sessions] (agent sessions, kind = \"agent\")")
    elif workload is not None:
        if workload.kind == "single" and has_s:
            ctx.err(("sessions",), 'workload kind = "single" goes with [arrivals]; [sessions] drive '
                                   'kind = "agent" workloads')
        if workload.kind == "agent" and has_a:
            ctx.err(("arrivals",), 'workload kind = "agent" goes with [sessions] (arrival, think_time); '
                                   '[arrivals] drive kind = "single" workloads')

    retry = read_retry(ctx, raw)
    arms = read_arms(ctx, raw, model, info, target) if info is not None or "arms" in raw else ()
    check_scenario(ctx, arms, target, has_s)
    thresholds_ = read_thresholds(ctx, raw, [a.name for a in arms])
    prices = read_pricing(ctx, raw)
    if arms and not ctx.problems:
        check_prices(ctx, arms, prices, "arms" in raw)
    emulator = ctx.table(raw, (), "emulator") or {}
    if check_emulator is not None:
        _check_emulator(ctx, emulator, check_emulator)
    if workload is not None and arms:
        check_context(ctx, workload, arms)
        cache_warnings(ctx, workload, arms)
    max_tokens_warnings(ctx, arms)
    outputs = read_outputs(ctx, raw)
    if ctx.problems:
        return None
    return Scenario(
        name=name, seed=seed, duration=duration, target=target, model=model, workload=workload,
        arms=arms, arrivals=arrivals, sessions=sessions, retry=retry, thresholds=thresholds_,
        pricing=prices, emulator=emulator, description=description, path=ctx.path, source=text,
        warnings=tuple(m for _, m in sorted(ctx.warnings, key=lambda x: x[0])), outputs=outputs,
    )
