"""Everything checked before a run sends a request or writes a file.

`load_scenario(path)` reads and checks a scenario file; `Overrides` holds what a
command's flags (or an API caller's keyword arguments) change in it, and
`apply_overrides` applies them with the same checks and messages as the flags;
`prepare` builds the run's pricer and the built-in emulator's configuration. Errors
are exceptions: `ScenarioError` (`file:line: key: message`), `InputError` (a complete
message naming its file, key or flag), or a plain `ValueError` / `OSError` whose
message a command prefixes with its own name.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from loadgen._toml import toml
from loadgen.catalog import pricing
from loadgen.catalog.profiles import region_problem
from loadgen.emulator.config import EmulatorConfig
from loadgen.engine.schedule import size_problem
from loadgen.engine.transport import TargetError, have_credentials
from loadgen.scenario import Scenario, ScenarioError, load, loads, sweep
from loadgen.scenario.batch import aws_problem as batch_aws_problem
from loadgen.scenario.toml_lines import key_lines, line_of
from loadgen.scenario.units import parse_duration


class InputError(ValueError):
    """Bad input whose message is complete (it names the file, key or flag): a command
    prints it as it is and exits 2. Nothing was sent or written."""


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file, its [emulator] table as the emulator reads it: a
    `Scenario`, or ScenarioError listing every problem as `file:line: key: message`."""
    return load(str(path), check_emulator=EmulatorConfig.from_mapping)


@dataclass(frozen=True)
class Overrides:
    """What the command-line flags change in a scenario; None (or empty) leaves it as the
    file says. `max_requests` and `max_cost_usd` are the runner's limits, checked here
    with the rest."""

    target: str | None = None           # "emulator" | "aws"
    region: str | None = None
    endpoint_url: str | None = None
    time_scale: float | None = None     # warp clock scale (the built-in emulator only)
    duration: str | None = None         # e.g. "10m"
    arms: Sequence[str] = ()            # run only these arms
    max_requests: int | None = None     # first attempts per arm
    max_cost_usd: float | None = None   # stop dispatch before the bill passes this (USD)
    allow_huge: bool = False            # allow schedules above the size limit
    sets: Sequence[str] = ()            # "KEY=VALUE" (--set), applied to the file's text first


def apply_overrides(sc: Scenario, ov: Overrides) -> Scenario:
    """The scenario as the overrides amend it (ValueError with a flag name on bad values,
    ScenarioError `file:line: key: message` on a contradiction inside the file)."""
    if ov.sets:
        sc = apply_sets(sc, ov.sets)
    target = sc.target
    if ov.target:
        target = dataclasses.replace(target, kind=ov.target)
    if ov.region:
        problem = region_problem(ov.region)
        if problem:
            raise ValueError(f"--region: {problem}")
        target = dataclasses.replace(target, region=ov.region)
    if ov.endpoint_url:
        target = dataclasses.replace(target, endpoint_url=ov.endpoint_url)
    if target.endpoint_url:
        problem = endpoint_problem(target.endpoint_url)
        if problem:
            if not ov.endpoint_url:
                raise ScenarioError([_in_file(sc, ("target", "endpoint_url"), problem)])
            raise ValueError(f"--endpoint-url: {problem}")
    if ov.time_scale is not None:
        if not (ov.time_scale > 0 and math.isfinite(ov.time_scale)):
            raise ValueError(f"--time-scale: expected a number > 0, got {ov.time_scale}")
        target = dataclasses.replace(target, time_scale=ov.time_scale)
    if target.kind == "aws" and ov.time_scale not in (None, 1, 1.0):
        raise ValueError("--time-scale: runs against AWS always use the real clock (scale 1)")
    if target.endpoint_url and target.time_scale != 1.0:
        # The warp clock only works where loadgen paces the emulator on it (see real_clock_reason).
        why = (f"a run against {target.endpoint_url} uses the real clock: loadgen does not drive that "
               "endpoint's clock, so a warped client would see TTLs that never expire, load sent "
               f"{target.time_scale:g}x too fast and timeouts {target.time_scale:g}x too short")
        if ov.time_scale is not None:
            raise ValueError(f"--time-scale: {why} (drop --time-scale; without an endpoint URL the "
                             "built-in emulator runs warped)")
        if not ov.endpoint_url:  # both in the file; a scale in the file with the flag is not applied
            raise ScenarioError([_in_file(sc, ("target", "time_scale"), why + " (remove time_scale or endpoint_url)")])
    if ov.target == "aws":  # the file's own [target] kind was checked by the parser
        problem = batch_aws_problem(sc.arms, target)
        if problem:
            raise ValueError(f"--target aws: {problem}")
    sc = dataclasses.replace(sc, target=target)
    if ov.duration:
        try:
            sc = dataclasses.replace(sc, duration=parse_duration(ov.duration))
        except ValueError as e:
            raise ValueError(f"--duration: {e}") from None
    if ov.arms:
        names = [a.name for a in sc.arms]
        unknown = [n for n in ov.arms if n not in names]
        if unknown:
            raise ValueError(f"--arm: no arm named {', '.join(unknown)} (arms: {', '.join(names)})")
        sc = dataclasses.replace(sc, arms=tuple(a for a in sc.arms if a.name in ov.arms))
    if ov.max_requests is not None and ov.max_requests < 1:
        raise ValueError("--max-requests: expected a positive integer")
    if ov.max_cost_usd is not None and not ov.max_cost_usd > 0:
        raise ValueError("--max-cost-usd: expected a positive amount in USD")
    problem = size_problem(sc, allow_huge=ov.allow_huge)
    if problem:
        raise ValueError(problem)
    return sc


def apply_sets(sc: Scenario, sets: Sequence[str]) -> Scenario:
    """`sc` with `--set KEY=VALUE` applied: the key paths, value typing and checks of
    `--sweep` (loadgen.scenario.sweep) with one value each, all at once.

    The file's TOML is edited and parsed again like any file, so a set value gets the
    messages a typed one would. The new Scenario's `source` is the edited text (what the
    results directory keeps as scenario.toml), headed by a comment naming the sets.
    Errors: ValueError `--set KEY: message` for a bad flag or value; ScenarioError
    `file:line: key: message (...)` when the set makes the file's own value wrong.
    """
    axes: list[sweep.Axis] = []
    for flag in sets:
        key, eq, value = flag.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise ValueError(f"--set {flag!r}: expected KEY=VALUE, e.g. --set arrivals.rate=20/s")
        try:
            parts = sweep.split_key(key)
        except ValueError as e:
            raise ValueError(f"--set {key}: {e}") from None
        if any(a.parts == parts for a in axes):
            raise ValueError(f"--set {key}: given twice")
        axes.append(sweep.Axis(key, parts, (value,)))
    point = sweep.Point(0, tuple((a.key, a.values[0]) for a in axes))
    notes: list[str] = []
    raw = toml.loads(sc.source)
    try:
        doc = sweep.apply(raw, axes, point, notes)
    except sweep.SweepError as e:  # its message names the flag as --sweep; same key path rules
        raise ValueError(re.sub(r"^--sweep ", "--set ", str(e))) from None
    header = "\n".join([f"loadgen --set {', '.join(f'{k} = {v}' for k, v in point.values)}",
                        *(f"  and {n}" for n in notes), f"generated from {sc.path} (comments dropped)"])
    body = sweep.dumps(doc, header=header)
    retell = _Retell(sc, raw, doc, body, axes)
    try:
        out = loads(body, sc.path, check_emulator=EmulatorConfig.from_mapping)
    except ScenarioError as e:
        told = [retell(p) for p in e.problems]
        if any(not t.startswith("--set") for t in told):
            raise ScenarioError(told) from None  # the file's own value is at fault: file:line
        raise ValueError("\n".join(told)) from None
    warnings = tuple(retell(w) for w in out.warnings) + tuple(f"--set: {n}" for n in notes)
    return dataclasses.replace(out, warnings=warnings)


class _Retell:
    """A message about the --set-edited text, told against what the user typed:
    `--set KEY: key: message` when the value at fault is a set one, else
    `file:line: key: message (with --set ...)` at the original file's line of that key."""

    def __init__(self, sc: Scenario, raw: dict, doc: dict, body: str, axes: Sequence[sweep.Axis]) -> None:
        self.sc, self.raw, self.doc, self.axes = sc, raw, doc, axes
        # the outermost key on each line of the edited text (an inline table changed anywhere differs whole)
        self.at: dict[int, tuple] = {}
        for path, line in sorted(key_lines(body).items(), key=lambda kv: -len(kv[0])):
            self.at[line] = path
        self.own_lines = key_lines(sc.source)

    def __call__(self, message: str) -> str:
        m = re.match(rf"{re.escape(self.sc.path)}:(\d+): (.*)$", message, re.S)
        if not m:
            return f"--set: {message}"
        path = self.at.get(int(m.group(1)))
        if path is not None and _value_at(self.raw, path) == _value_at(self.doc, path):
            return (f"{self.sc.path}:{line_of(self.own_lines, path)}: {m.group(2)} "
                    f"(with --set {', '.join(a.key for a in self.axes)})")
        named = [a.key for a in self.axes if path is not None and a.parts[-1] in path] or [a.key for a in self.axes]
        return f"--set {', '.join(named)}: {m.group(2)}"


_MISSING = object()


def _value_at(doc: object, path: tuple) -> object:
    for part in path:
        try:
            doc = doc[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return doc


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be a bedrock-runtime endpoint (None if it can): botocore's own
    test for endpoint URLs, with an http(s) scheme and a valid port."""
    shape = 'expected an http:// or https:// URL such as "http://127.0.0.1:8787"'
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError when out of range
    except ValueError as e:
        return f"{shape}, got {url!r} ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shape}, got {url!r}"
    if not (is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)):
        return f"{shape}, got {url!r} (not a valid host name)"
    return None


def _in_file(sc: Scenario, key: tuple[str, ...], message: str) -> str:
    """`file:line: key: message` for a key of the scenario file."""
    return f"{sc.path}:{line_of(key_lines(sc.source), key)}: {'.'.join(key)}: {message}"


def real_clock_reason(sc: Scenario) -> str | None:
    """Why a run of `sc` must use the real clock, or None when it may warp.

    A warp clock is only right where loadgen paces the emulator on that same clock (the
    built-in emulator in this process). Any other target (AWS, a separate `loadgen
    emulator`, another endpoint) keeps its own time: TTLs, quota windows and latency
    there pass in real seconds, so the client must count real seconds too.
    """
    if sc.target.kind == "aws":
        return "AWS keeps real time"
    if sc.target.endpoint_url:
        return (f"{sc.target.endpoint_url} keeps its own time (loadgen does not drive its clock)"
                + (f"; the scenario's time_scale {sc.target.time_scale:g} applies to the built-in "
                   "emulator only" if sc.target.time_scale != 1.0 else ""))
    return None


def make_pricer(sc: Scenario) -> Callable[..., dict[str, float]]:
    """The run's pricer: catalog prices with the scenario's overrides, USD by bucket."""
    return pricing.pricer(pricing.table_for(sc.pricing))


def emulator_config(sc: Scenario) -> EmulatorConfig:
    """The built-in emulator's configuration from the scenario's [emulator] table
    (ValueError naming the file and `emulator.<key>`)."""
    return EmulatorConfig.from_mapping(sc.emulator, source=sc.path)


@dataclass(frozen=True)
class Prepared:
    """A scenario checked for a run: its pricer, and the built-in emulator's configuration
    (None when the run calls AWS or another endpoint)."""

    scenario: Scenario
    pricer: Callable[..., dict[str, float]]
    emulator: EmulatorConfig | None


def prepare(sc: Scenario, *, builtin_emulator: bool | None = None) -> Prepared:
    """The pricer and emulator configuration of a run of `sc` (InputError on a bad
    [emulator] table, ValueError on a model the price catalog does not know).

    `builtin_emulator` defaults to what the scenario's target says (kind emulator, no
    endpoint URL); `simulate` always models the built-in emulator.
    """
    if builtin_emulator is None:
        builtin_emulator = sc.target.kind == "emulator" and not sc.target.endpoint_url
    cfg = None
    if builtin_emulator:
        try:
            cfg = emulator_config(sc)
        except ValueError as e:  # the message already names the file and the key
            raise InputError(str(e)) from e
    try:
        pricer = make_pricer(sc)
    except Exception as e:  # an unknown model in the price catalog is bad input, not a $0 run
        raise ValueError(str(e)) from e
    return Prepared(sc, pricer, cfg)


def check_credentials(sc: Scenario) -> None:
    """TargetError unless AWS credentials are found, for a run whose target is AWS."""
    if sc.target.kind == "aws" and not have_credentials():
        raise TargetError("no AWS credentials found (standard chain: environment, ~/.aws, SSO, instance "
                          "role); set them up or run against the emulator (the default target)")


def as_scenario(scenario: Scenario | str | Path) -> Scenario:
    """A Scenario as given, or loaded from a path."""
    return scenario if isinstance(scenario, Scenario) else load_scenario(scenario)


def warn_all(sc: Scenario, warn: Callable[[str], None] | None) -> None:
    """Hand each of the scenario's warnings to `warn` (nothing when it is None)."""
    if warn is not None:
        for w in sc.warnings:
            warn(w)
