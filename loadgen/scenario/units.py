"""Value syntax shared by scenario files and threshold expressions.

Durations are strings with a unit ("250ms", "6s", "6m", "1.5h", "2h30m") -> seconds.
Rates are "N/unit" ("20/s", "12/m", "12/min", "12/h") -> events per second.
Percents ("1%", "99.5%") -> fractions; money ("$3.00") -> USD.
Each parser raises ValueError whose message says what was expected; callers add
the file, line and key.
"""

from __future__ import annotations

import math
import re

DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
# seconds per rate unit; a rate is divided by it ("12/h" -> 12 / 3600, the exact float)
RATE_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
}

DURATION_HINT = 'a duration string with a unit, like "250ms", "6s", "6m", "1.5h" or "2h30m"'
RATE_HINT = 'a rate like "20/s", "12/m" or "12/h"'

_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"\s*({_NUM})\s*(ms|sec|min|s|m|h|d)\s*")
_RATE = re.compile(rf"\s*({_NUM})\s*/\s*([a-z]+)\s*")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unit_text(value: object, hint: str, unit: str, what: str) -> str:
    """The stripped text of a value that must be a non-negative number with a unit
    (`unit` is the example suffix, `what` the plural noun); ValueError otherwise."""
    if _is_number(value):
        raise ValueError(f"expected {hint}; got the bare number {value!r}: add a unit, "
                         f'e.g. "{_fmt_num(value)}{unit}"')
    if not isinstance(value, str):
        raise ValueError(f"expected {hint}, got {_type_name(value)}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"expected {hint}; got {value!r}: {what} cannot be negative")
    return text


def parse_duration(value: object) -> float:
    """Seconds (>= 0) from "250ms", "6s", "1.5h", "2h30m"; ValueError otherwise."""
    text = _unit_text(value, DURATION_HINT, "s", "durations")
    pos, total, parts = 0, 0.0, 0
    while pos < len(text):
        m = _PART.match(text, pos)
        if not m:
            break
        total += float(m.group(1)) * DURATION_UNITS[m.group(2)]
        pos, parts = m.end(), parts + 1
    if parts == 0 or pos != len(text):
        if re.fullmatch(rf"\s*{_NUM}\s*", text):
            raise ValueError(f"expected {DURATION_HINT}; got {value!r}: add a unit, e.g. \"{text}s\"")
        raise ValueError(f"expected {DURATION_HINT}, got {value!r}")
    if not math.isfinite(total):
        raise ValueError(f"expected {DURATION_HINT}; got {value!r}, which is too large to count")
    return total


def parse_rate(value: object) -> float:
    """Events per second (>= 0) from "20/s", "12/m", "12/min", "12/h"; ValueError otherwise."""
    _unit_text(value, RATE_HINT, "/s", "rates")
    m = _RATE.fullmatch(value)
    if not m:
        raise ValueError(f"expected {RATE_HINT}, got {value!r}")
    unit = m.group(2)
    if unit not in RATE_UNITS:
        raise ValueError(f"expected {RATE_HINT}; unknown time unit {unit!r} in {value!r} "
                         f"(use s, m/min or h)")
    rate = float(m.group(1)) / RATE_UNITS[unit]
    if not math.isfinite(rate):
        raise ValueError(f"expected {RATE_HINT}; got {value!r}, which is too large to count")
    return rate


def parse_percent(value: object) -> float:
    """Fraction from "1%" (0.01)."""
    if isinstance(value, str):
        m = re.fullmatch(rf"\s*({_NUM})\s*%\s*", value)
        if m:
            return float(m.group(1)) / 100
    raise ValueError(f'expected a percent like "1%" or "99.5%", got {value!r}')


def parse_usd(value: object) -> float:
    """USD from "$3.00", "3.00" or a number."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(rf"\s*\$?\s*({_NUM})\s*", value)
        if m:
            return float(m.group(1))
    raise ValueError(f'expected an amount in USD like "$3.00", got {value!r}')


def format_duration(seconds: float, *, coarse: bool = False) -> str:
    """Short human form: 0.25 -> "250ms", 90 -> "1m30s", 7200 -> "2h".

    coarse (plans, arrival descriptions): whole seconds from a minute up and no
    milliseconds below it: 90.4 -> "1m30s", 0.25 -> "0.25s", 2.5 -> "2.5s".
    """
    if coarse:
        if seconds < 60:
            return f"{format_number(seconds)}s"
        h, rest = divmod(round(seconds), 3600)
        m, s = divmod(rest, 60)
        return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{_fmt_num(round(seconds * 1000, 3))}ms"
    if seconds < 60:
        return f"{_fmt_num(round(seconds, 3))}s"
    out, rest = "", seconds
    for unit, size in (("h", 3600), ("m", 60)):
        n = math.floor(rest / size)
        if n:
            out += f"{n}{unit}"
            rest -= n * size
    if rest > 1e-9:
        out += f"{_fmt_num(round(rest, 3))}s"
    return out


def format_rate(per_second: float, *, plain: bool = False) -> str:
    """Pick the unit that gives a readable number: 0.00333 -> "12/h", 5 -> "5/s".

    Three significant figures; plain (arrival descriptions) writes them without an
    exponent: 1500/s, where the default writes 1.5e+03/s.
    """
    for unit, size in (("s", 1), ("m", 60), ("h", 3600)):
        if per_second * size >= 1 or unit == "h":
            number = format_number(per_second * size) if plain else f"{per_second * size:.3g}"
            return f"{number}/{unit}"
    raise AssertionError("unreachable")


def format_number(x: float) -> str:
    """Three significant figures, no exponent, no trailing zeros: 20, 0.333, 1500."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{round(x, decimals):.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{round(x):d}"


def format_ms(ms: float, sep: str = " ") -> str:
    """A latency in milliseconds as a person reads it: "850 ms", "1.62 s" (whole ms below
    a second, hundredths of a second above). `sep=""` for tight table cells: "850ms"."""
    return f"{ms / 1000:.2f}{sep}s" if abs(ms) >= 1000 else f"{ms:.0f}{sep}ms"


def _fmt_num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)
