"""Distributions of non-negative numbers (seconds or tokens): one small class per kind.

Each kind owns its parameters, its rules (`problems`: checked when the object is made,
and by the parser, which puts each problem on its key's line), its TOML table (`read`),
its text for plans (`describe`) and its draws (`sample`). DISTRIBUTIONS maps the TOML
name (`dist = "lognormal"`) to the class: adding a kind touches this file only.

Pure: a draw is a function of the parameters and the `random.Random` passed in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Callable, ClassVar, Mapping, Union

from loadgen.scenario.kinds import Checked, Problem, TableReader, build, number_problems, plain

# z such that P(Z <= z) = 0.9 for a standard normal; turns (median, p90) into sigma.
Z90 = NormalDist().inv_cdf(0.9)

Show = Callable[[float], str]


@dataclass(frozen=True)
class Constant(Checked):
    """Always `value`."""

    kind: ClassVar[str] = "constant"
    keys: ClassVar[tuple[str, ...]] = ("value",)
    value: float

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Show) -> list[Problem]:
        return number_problems(p, cls.keys, positive=cls.keys)

    @classmethod
    def read(cls, r: TableReader) -> Constant | None:
        return build(r, cls, {"value": r.amount("value", zero_ok=False)}, r.show)

    def sample(self, rng: random.Random) -> float:
        return float(self.value)

    def describe(self, show: Show = plain) -> str:
        return show(self.value)


@dataclass(frozen=True)
class Uniform(Checked):
    """Uniform on [low, high]."""

    kind: ClassVar[str] = "uniform"
    keys: ClassVar[tuple[str, ...]] = ("low", "high")
    low: float
    high: float

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Show) -> list[Problem]:
        out = number_problems(p, cls.keys, positive=("high",))
        if not out and p["low"] > p["high"]:
            out.append(("low", f"uniform low ({show(p['low'])}) is above high ({show(p['high'])})"))
        return out

    @classmethod
    def read(cls, r: TableReader) -> Uniform | None:
        return build(r, cls, {"low": r.amount("low", zero_ok=True), "high": r.amount("high", zero_ok=False)},
                     r.show)

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def describe(self, show: Show = plain) -> str:
        return f"uniform {show(self.low)}..{show(self.high)}"


@dataclass(frozen=True)
class Exponential(Checked):
    """Exponential with the given mean (a memoryless gap)."""

    kind: ClassVar[str] = "exponential"
    keys: ClassVar[tuple[str, ...]] = ("mean",)
    mean: float

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Show) -> list[Problem]:
        return number_problems(p, cls.keys, positive=cls.keys)

    @classmethod
    def read(cls, r: TableReader) -> Exponential | None:
        return build(r, cls, {"mean": r.amount("mean", zero_ok=False)}, r.show)

    def sample(self, rng: random.Random) -> float:
        return rng.expovariate(1.0 / self.mean)

    def describe(self, show: Show = plain) -> str:
        return f"exponential, mean {show(self.mean)}"


@dataclass(frozen=True)
class Lognormal(Checked):
    """Lognormal given by its median and 90th percentile.

    ln X ~ Normal(mu, sigma) with mu = ln(median) and sigma = (ln(p90) - ln(median)) / z90,
    z90 = Phi^-1(0.9) ~= 1.2816, so P(X <= median) = 0.5 and P(X <= p90) = 0.9.
    p90 must be above the median: at p90 == median sigma is 0 and the "distribution" is
    the constant median, which `dist = "constant"` says plainly.
    """

    kind: ClassVar[str] = "lognormal"
    keys: ClassVar[tuple[str, ...]] = ("median", "p90")
    median: float
    p90: float

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Show) -> list[Problem]:
        out = number_problems(p, cls.keys, positive=cls.keys)
        if not out and p["p90"] <= p["median"]:
            out.append(("p90", f"p90 ({show(p['p90'])}) must be above the median ({show(p['median'])}): "
                               "90 % of draws fall below p90"))
        return out

    @classmethod
    def read(cls, r: TableReader) -> Lognormal | None:
        return build(r, cls, {"median": r.amount("median", zero_ok=False),
                              "p90": r.amount("p90", zero_ok=False)}, r.show)

    def sample(self, rng: random.Random) -> float:
        mu = math.log(self.median)
        return rng.lognormvariate(mu, (math.log(self.p90) - mu) / Z90)

    def describe(self, show: Show = plain) -> str:
        return f"lognormal, median {show(self.median)}, p90 {show(self.p90)}"


@dataclass(frozen=True)
class Empirical(Checked):
    """One of the given values, each equally likely (from `values = [...]` or a data file)."""

    kind: ClassVar[str] = "empirical"
    keys: ClassVar[tuple[str, ...]] = ("values", "file", "column")
    values: tuple[float, ...]

    @classmethod
    def problems(cls, p: Mapping[str, Any], show: Show) -> list[Problem]:
        values = p["values"]
        if not isinstance(values, tuple) or not values:
            return [("values", f"expected a non-empty tuple of numbers >= 0, got {values!r}")]
        return [(f"values[{i}]", m) for i, v in enumerate(values)
                for _, m in number_problems({"v": v}, ("v",), positive=())]

    @classmethod
    def read(cls, r: TableReader) -> Empirical | None:
        if r.has("values") == r.has("file"):
            r.problem("", "empirical needs exactly one of values = [...] or file = \"path\"")
            return None
        values = r.amounts("values") if r.has("values") else r.numbers_file("file", "column")
        return build(r, cls, {"values": values}, r.show)

    def sample(self, rng: random.Random) -> float:
        return float(rng.choice(self.values))

    def describe(self, show: Show = plain) -> str:
        return f"empirical, {len(self.values)} values"


Distribution = Union[Constant, Uniform, Exponential, Lognormal, Empirical]

# The TOML name of each kind (`dist = "..."`) -> its class.
DISTRIBUTIONS: dict[str, Any] = {c.kind: c for c in (Constant, Uniform, Exponential, Lognormal, Empirical)}


def sample_int(dist: Distribution, rng: random.Random, *, minimum: int = 1) -> int:
    """One draw rounded half-up to a whole count (tokens), at least `minimum`."""
    return max(minimum, int(dist.sample(rng) + 0.5))


def session_turns(rng: random.Random, turns_min: int, turns_max: int) -> int:
    """Turns in one agent session: uniform over the whole numbers turns_min..turns_max inclusive."""
    if not 1 <= turns_min <= turns_max:
        raise ValueError(f"turns: expected 1 <= min <= max, got min={turns_min!r}, max={turns_max!r}")
    return rng.randint(turns_min, turns_max)
