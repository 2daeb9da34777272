"""Arrival processes and gap distributions: pure, seeded, no clock.

(Contract; implementations to follow.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True)
class Dist:
    """A distribution of non-negative numbers (seconds or tokens).

    kind: "constant" (value), "uniform" (low, high), "exponential" (mean),
    "lognormal" (median, p90), "empirical" (values: sampled uniformly).
    """

    kind: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    median: float | None = None
    p90: float | None = None
    values: tuple[float, ...] = ()


@dataclass(frozen=True)
class Stage:
    duration: float    # seconds
    target: float      # rate (per second) reached at the end of the stage, linearly from the previous


@dataclass(frozen=True)
class TracePoint:
    offset: float                      # seconds from run start (after time scaling)
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class OpenLoop:
    """An open-loop arrival process.

    kind: "constant" (rate), "poisson" (rate), "stages" (start_rate, stages),
    "bursts" (every, size, spread, rate between bursts), "trace" (points).
    Rates are per second.
    """

    kind: str
    rate: float = 0.0
    start_rate: float = 0.0
    stages: tuple[Stage, ...] = ()
    every: float = 0.0
    size: int = 0
    spread: float = 0.0
    points: tuple[TracePoint, ...] = ()


def sample(dist: Dist, rng: random.Random) -> float:
    """One draw from `dist` (never negative)."""
    raise NotImplementedError


def offsets(process: OpenLoop, duration: float, rng: random.Random) -> Iterator[float]:
    """Intended start offsets (seconds from run start), non-decreasing, all < duration."""
    raise NotImplementedError
