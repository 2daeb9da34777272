"""The scenario's data: frozen dataclasses other packages build on, and ScenarioError.

Units after parsing: durations in seconds (float), rates in events per second
(float), token counts as int, prices in USD per 1M tokens. `load()` (loader.py) fills
these; the keys, their units and defaults are documented in README.md (section
"Scenario reference").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from loadgen.scenario.arrivals import Process
from loadgen.scenario.batch import BatchTarget
from loadgen.scenario.distributions import Distribution
from loadgen.scenario.outputs import Outputs


class ScenarioError(Exception):
    """One or more problems in a scenario file; str() is one `file:line: key: message` per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Target:
    kind: str = "emulator"          # "emulator" | "aws"
    region: str = "us-east-1"
    time_scale: float = 1.0         # warp clock scale (emulator only; aws is always 1)
    endpoint_url: str | None = None # aws only: a non-default endpoint (e.g. a local emulator)
    max_in_flight: int = 64         # bound on concurrent requests, per arm
    request_timeout: float = 120.0  # seconds (scenario time) before an attempt is a timeout
    batch: BatchTarget | None = None  # where batch arms put their records (scenario/batch.py)


@dataclass(frozen=True)
class Model:
    id: str
    max_tokens: int = 512           # tokens; when omitted, the model's maximum output
    max_tokens_set: bool = True     # False: [model] max_tokens omitted, requests omit maxTokens
    stream: bool = True
    temperature: float | None = None


@dataclass(frozen=True)
class Workload:
    kind: str                       # "single" | "agent"
    prefix_tokens: int              # byte-stable cached part (system prompt + tools)
    output_tokens: Distribution             # tokens the emulator is asked to produce (hint, see workload.py)
    question_tokens: Distribution | None = None   # single: the varying part below the checkpoint
    turn_tokens: Distribution | None = None       # agent: new user-turn size
    turns_min: int = 1                    # agent: turns per session, uniform in [min, max]
    turns_max: int = 1
    checkpoint_pattern: str = "kept"      # agent: "kept" | "moving" (workload.py)


@dataclass(frozen=True)
class Sessions:
    arrival: Process               # when sessions start
    think_time: Distribution                # gap (seconds) between a turn's end and the next turn's start


@dataclass(frozen=True)
class Retry:
    policy: str = "off"             # "off" | "fixed" | "exponential"
    max_attempts: int = 1           # attempts in all, including the first
    base: float = 1.0               # seconds: fixed delay, or exponential base
    cap: float = 30.0               # seconds: exponential ceiling
    jitter: bool = True             # full jitter for exponential
    on: tuple[str, ...] = ("throttled", "5xx")   # what is retried: throttled, 5xx, timeout


@dataclass(frozen=True)
class Arm:
    name: str
    model_id: str                   # final id after applying `profile` (e.g. "us.anthropic...")
    profile: str                    # "region" | "geo" | "global"
    cache: bool = True
    cache_ttl: str = "5m"           # "5m" | "1h"
    stream: bool = True
    max_tokens: int = 512           # tokens Bedrock reserves per request (the model's maximum if omitted)
    temperature: float | None = None
    service_tier: str | None = None
    max_tokens_set: bool = True     # False: requests omit maxTokens, as a client without it would
    mode: str = "on_demand"         # "on_demand" | "batch" (scenario/batch.py)


@dataclass(frozen=True)
class Threshold:
    expr: str                       # e.g. "p99(ttft) < 2s"
    arm: str | None = None          # None = every arm
    line: int = 0


@dataclass(frozen=True)
class PriceOverride:
    model_id: str                   # any id form; the profile prefix selects the row
    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    duration: float                 # scenario seconds
    target: Target
    model: Model
    workload: Workload
    arms: tuple[Arm, ...]
    arrivals: Process | None = None    # open loop (single-turn); exactly one of arrivals/sessions
    sessions: Sessions | None = None    # closed-loop agent sessions
    retry: Retry = field(default_factory=Retry)
    thresholds: tuple[Threshold, ...] = ()
    pricing: tuple[PriceOverride, ...] = ()
    emulator: Mapping[str, Any] = field(default_factory=dict)   # passed to the emulator as-is
    description: str = ""
    path: str = ""                  # the file it was read from
    source: str = ""                # the file's exact text (copied into results)
    warnings: tuple[str, ...] = ()  # `file:line: key: message` lines that do not stop a run
    outputs: Outputs = field(default_factory=Outputs)   # [outputs]: interval figures, CloudWatch (outputs.py)

