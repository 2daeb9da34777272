"""What the API returns: a run's figures, read back from the files it wrote.

`RunResult` is one run or simulation: `.summary` is summary.json as written (the same
dict a tool reading the file gets), `.arms[name]` a typed view of one arm, `.records()`
the per-attempt records of requests.jsonl. A sweep returns a `SweepResult` (one
RunResult per point, `.summary` is sweep.json), find-max-rate a `MaxRateResult`
(`.summary` is maxrate.json). Every result has `.path` and `.exit_code`, the code the
`loadgen` command exits with for it (loadgen/exit_codes.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from loadgen.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_TARGET, EXIT_THRESHOLD
from loadgen.results.directory import load_attempts


@dataclass(frozen=True)
class Cost:
    """One arm's bill in USD (summary.json `cost_usd`)."""

    total: float
    per_1000: float       # USD per 1000 requests sent
    input: float
    output: float
    cache_read: float
    cache_write: float

    @classmethod
    def of(cls, d: Mapping[str, Any]) -> "Cost":
        return cls(**{f: d.get(f) or 0.0 for f in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ArmResult:
    """One arm of a run, from its summary.json entry (`.summary`): counts, USD, milliseconds."""

    name: str
    summary: Mapping[str, Any]

    @property
    def cost(self) -> Cost:
        return Cost.of(self.summary.get("cost_usd", {}))

    @property
    def requests(self) -> Mapping[str, int]:
        """Attempts by status: sent, ok, throttled, error, timeout, retries."""
        return self.summary.get("requests", {})

    @property
    def latency_ms(self) -> Mapping[str, Mapping[str, float]]:
        """Percentiles in ms by metric: `latency_ms["ttft"]["p99"]`; also e2e, service, schedule_lag."""
        return self.summary.get("latency_ms", {})


@dataclass
class RunResult:
    """One run or simulation, written to `path` (a results directory)."""

    path: Path
    summary: dict[str, Any]                     # summary.json as written
    verdicts: list[Any] = field(default_factory=list)   # thresholds.Result per threshold and arm
    report: Path | None = None                  # report.html, when written
    warnings: list[str] = field(default_factory=list)   # from the plots and report (also in the report)
    behind: list[str] = field(default_factory=list)     # arms whose requests started late, in words
    target_error: Exception | None = None       # the target failed mid-run (dispatch stopped)
    # a run with batch arms against a real S3 bucket: what it left there (or removed), in words
    batch_leftovers: list[str] = field(default_factory=list)

    @property
    def arms(self) -> dict[str, ArmResult]:
        return {name: ArmResult(name, s) for name, s in self.summary.get("arms", {}).items()}

    @property
    def interrupted(self) -> bool:
        return self.summary.get("stopped") == "interrupted"

    @property
    def passed(self) -> bool:
        """Every threshold held (True when there are none)."""
        return not any(v.failed for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        if self.target_error is not None:
            return EXIT_TARGET  # whatever the thresholds say
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.passed else EXIT_THRESHOLD

    def records(self) -> list[dict[str, Any]]:
        """Every attempt of requests.jsonl as a dict, in the order they completed (all in
        memory at once: about 1.5 KB each; `iter_records()` streams them)."""
        return list(load_attempts(self.path))

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """The attempts of requests.jsonl one at a time, read from the file as you go (the
        file stays open until the iterator is finished or closed)."""
        return load_attempts(self.path)


class _DocumentStatus:
    """`interrupted` and `exit_code` as the command's own document (sweep.json,
    maxrate.json) recorded them."""

    summary: dict[str, Any]

    @property
    def interrupted(self) -> bool:
        return self.summary["interrupted"]

    @property
    def exit_code(self) -> int:
        return self.summary["exit_code"]


@dataclass
class SweepResult(_DocumentStatus):
    """A sweep: one RunResult per point run, in point order; `.summary` is sweep.json
    (`rows`: one per point and arm; `crossovers`; `points`: each point's verdicts)."""

    path: Path
    summary: dict[str, Any]
    points: list[RunResult]
    axes: Sequence[Any]                         # scenario.sweep.Axis, in flag order
    crossovers: Sequence[Any]                   # scenario.sweep.Crossover
    failed: list[tuple[Any, list[Any]]]         # (sweep.Point, failed thresholds.Result) per failing point
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.summary["rows"]


@dataclass
class MaxRateResult(_DocumentStatus):
    """find-max-rate: per arm the highest rate found (`.arms[name].max_rate`, requests/s;
    see maxrate.Found); `.summary` is maxrate.json; `.points` the RunResult written at
    each arm's rate found (an arm with no passing rate has none)."""

    path: Path
    summary: dict[str, Any]
    arms: dict[str, Any]                        # maxrate.Found per arm searched
    points: list[RunResult]
    table: str                                  # the text table the command prints
