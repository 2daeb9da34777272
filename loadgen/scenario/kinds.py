"""What every arrival-process and distribution kind shares.

A kind is a small frozen class (arrivals.py, distributions.py) that owns its parameters,
its rules, its text for plans and its sampling. It reads its own TOML table through a
TableReader, which the parser implements (traffic.py), so a kind never sees TOML, line
numbers or units; and its rules live in one `problems` method, which both the parser
(placing each problem on its key's line) and direct construction (ValueError) use.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Protocol

# A rule broken by a kind's parameters: (the TOML key it concerns, what was expected).
Problem = tuple[str, str]

REQUIRED: Any = object()   # a reader's default meaning "the key must be present"


class TableReader(Protocol):
    """Reads one kind's table, reporting each bad value on its key's line and returning
    None (or the default) in its place; implemented by traffic.py over the parser's Ctx.
    Units after reading: seconds, events per second, tokens."""

    def rate(self, key: str, default: Any = REQUIRED, *, allow_zero: bool = False) -> float | None: ...
    def duration(self, key: str, default: Any = REQUIRED, *, allow_zero: bool = False) -> float | None: ...
    def count(self, key: str, *, minimum: int) -> int | None: ...
    def number(self, key: str, default: Any = REQUIRED, *, low: float, low_open: bool) -> float | None: ...
    def amount(self, key: str, *, zero_ok: bool) -> float | None:
        """A size or gap in the table's unit (tokens, or a duration string for seconds)."""
    def amounts(self, key: str) -> tuple[float, ...] | None: ...
    def numbers_file(self, key: str, column_key: str) -> tuple[float, ...] | None: ...
    def stages(self, key: str) -> tuple[Any, ...] | None: ...
    def trace(self, key: str, time_scale: float) -> tuple[Any, ...] | None: ...
    def has(self, key: str) -> bool: ...
    def problem(self, key: str, message: str) -> None: ...
    def show(self, x: float) -> str:
        """A value of this table as the user wrote it: "30s" for seconds, "300" for tokens."""


def plain(x: float) -> str:
    """A number as %g: the `show` for kinds made in code."""
    return f"{x:g}"


def raise_first(kind: str, problems: Iterable[Problem]) -> None:
    """ValueError naming the kind and key of the first problem, if any (direct construction)."""
    for key, message in problems:
        raise ValueError(f"{kind}: {key}: {message}")


def build(reader: TableReader, cls: Any, params: Mapping[str, Any],
          show: Callable[[float], str]) -> Any:
    """`cls(**params)` after its rules hold, else None with every problem reported on its key."""
    if any(v is None for v in params.values()):
        return None
    found = list(cls.problems(params, show))
    for key, message in found:
        reader.problem(key, message)
    return None if found else cls(**params)


def number_problems(params: Mapping[str, Any], keys: Iterable[str], positive: Iterable[str]) -> list[Problem]:
    """Each key must hold a finite number >= 0, and > 0 when it is in `positive`."""
    out = []
    positive = set(positive)
    for key in keys:
        x = params.get(key)
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or x in (float("inf"), float("-inf")):
            out.append((key, f"expected a finite number, got {x!r}"))
        elif x < 0 or (x == 0 and key in positive):
            out.append((key, f"expected a number {'> 0' if key in positive else '>= 0'}, got {x!r}"))
    return out


class Checked:
    """The base of every kind: its rules (`problems`) run when it is built, so an object made
    in code obeys the same rules as one read from a scenario file (frozen dataclasses call
    this after their generated __init__)."""

    def __post_init__(self) -> None:
        raise_first(self.kind, self.problems(vars(self), plain))  # type: ignore[attr-defined]
