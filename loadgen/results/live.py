"""What the live status line reads while a run goes: counts per arm (`Snapshot`) and
recent throughput (`Rate`). Cheap to build: counters only, no percentiles."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmSnapshot:
    """Cheap live view of one arm (or the total, name "total"). cost_usd in USD."""

    name: str
    sent: int
    ok: int
    throttled: int
    error: int
    timeout: int
    warm: int
    cold: int
    cost_usd: float

    @property
    def warm_ratio(self) -> float:
        """warm / (warm + cold) over ok attempts; 0.0 before any cache traffic."""
        n = self.warm + self.cold
        return self.warm / n if n else 0.0


@dataclass(frozen=True)
class Snapshot:
    arms: tuple[ArmSnapshot, ...]
    total: ArmSnapshot

    def arm(self, name: str) -> ArmSnapshot:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)


@dataclass(frozen=True)
class Rate:
    """Recent throughput over a trailing window, scaled to per-minute figures.

    rpm: attempts sent per minute; tpm: quota tokens per minute (input +
    cache_write + output, as Bedrock's TPM quota counts them, without burndown);
    ok/throttled/errors: attempts completed per minute by outcome.
    """

    window_s: float
    rpm: float
    tpm: float
    ok_pm: float
    throttled_pm: float
    errors_pm: float
