"""What-if sweeps: `--sweep KEY=V1,V2,...` over scenario keys, and where arms cross over.

A sweep point is the scenario file with some keys set to other values. The file's
parsed TOML dict is edited and written back as TOML text, and that text goes through
the scenario parser like any file, so a swept value gets the same checks and the
same messages as one typed into the file, and the point's results directory holds
the exact scenario it ran (`scenario.toml`).

Keys are dotted paths into the TOML document: `sessions.think_time.median`,
`emulator.quotas.tpm`, `arrivals.rate`. Through an array of tables (`[[arms]]`) a
key applies to every element (`arms.cache_ttl`), or to the one named by the next
part (`arms.ttl-5m.cache_ttl`). Quote a part holding dots:
`emulator.quotas.models."us.anthropic.claude-haiku-4-5-20251001-v1:0".tpm`.

Values are TOML values (`400000`, `1.5`, `true`, `{dist = "constant", value = "5m"}`);
bare words that are not TOML (`5m`, `20/s`) are strings, and a key whose current
value is a string keeps a string (`name=1` stays "1"). Sweeping a lognormal's
`median` scales its `p90` along (see `apply`).

Just over 400 lines: the crossover reading (`crossovers`) shares the axes and rows defined
here; splitting it out would move names that plots and the sweep command import.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from loadgen._toml import toml
from loadgen.scenario.units import format_duration, parse_duration, parse_rate


class SweepError(ValueError):
    """A --sweep flag that cannot be applied; the message names the flag."""


@dataclass(frozen=True)
class Axis:
    """One --sweep flag: a key and the raw values (strings as typed)."""

    key: str
    parts: tuple[str, ...]
    values: tuple[str, ...]

    @property
    def short(self) -> str:
        return self.parts[-1]


@dataclass(frozen=True)
class Point:
    """One combination of axis values, in axis order."""

    index: int
    values: tuple[tuple[str, str], ...]   # (key, raw value)

    def label(self, axes: Sequence[Axis]) -> str:
        shorts = [a.short for a in axes]
        names = shorts if len(set(shorts)) == len(shorts) else [a.key for a in axes]
        return ",".join(f"{n}={v}" for n, (_, v) in zip(names, self.values))

    def dirname(self, axes: Sequence[Axis]) -> str:
        safe = re.sub(r"[^A-Za-z0-9._=,-]+", "_", self.label(axes).replace("/", "per"))
        return f"{self.index:02d}-{safe}"[:120]


_PART = re.compile(r'"((?:[^"\\]|\\.)*)"|([^."]+)')


def split_key(key: str) -> tuple[str, ...]:
    """Dotted key -> parts; "quoted.parts" stay whole. ValueError on an empty part."""
    parts: list[str] = []
    pos = 0
    while pos < len(key):
        m = _PART.match(key, pos)
        if not m:
            raise ValueError(f"cannot read key {key!r}: expected dotted names like sessions.think_time.median")
        parts.append(m.group(1) if m.group(1) is not None else m.group(2).strip())
        pos = m.end()
        if pos < len(key):
            if key[pos] != ".":
                raise ValueError(f"cannot read key {key!r} at {key[pos:]!r}")
            pos += 1
            if pos == len(key):
                raise ValueError(f"key {key!r} ends with a dot")
    if not parts or any(p == "" for p in parts):
        raise ValueError(f"key {key!r} has an empty part")
    return tuple(parts)


def parse_axes(flags: Iterable[str]) -> list[Axis]:
    """--sweep flags -> axes; SweepError naming the flag on bad syntax or a repeated key."""
    axes: list[Axis] = []
    for flag in flags:
        key, eq, vals = flag.partition("=")
        if not eq or not key.strip():
            raise SweepError(f"--sweep {flag!r}: expected KEY=V1,V2,... e.g. sessions.think_time.median=1m,6m,20m")
        try:
            parts = split_key(key.strip())
        except ValueError as e:
            raise SweepError(f"--sweep {flag!r}: {e}") from None
        values = _split_values(vals)
        if not values or any(v == "" for v in values):
            raise SweepError(f"--sweep {flag!r}: expected a comma-separated list of values after '=', "
                             "without empty ones")
        if len(set(values)) != len(values):
            raise SweepError(f"--sweep {flag!r}: a value is listed twice")
        if any(a.parts == parts for a in axes):
            raise SweepError(f"--sweep {key}: the key is swept twice; give all its values in one flag")
        axes.append(Axis(key.strip(), parts, tuple(values)))
    return axes


def _split_values(text: str) -> list[str]:
    """Split on commas outside {...}, [...] and quotes, so inline tables survive."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def points(axes: Sequence[Axis]) -> list[Point]:
    """The cross product of the axes' values, first axis slowest."""
    combos = itertools.product(*[[(a.key, v) for v in a.values] for a in axes])
    return [Point(i, tuple(c)) for i, c in enumerate(combos)]


# --------------------------------------------------------------------------- applying

def apply(raw: Mapping[str, Any], axes: Sequence[Axis], point: Point,
          notes: list[str] | None = None) -> dict[str, Any]:
    """A deep copy of the TOML dict with the point's values set; SweepError on a bad path.

    Sweeping a lognormal's `median` keeps its shape: `p90` moves by the same factor
    (unless p90 is swept too), so "the median gap" shifts the whole distribution and a
    median above the file's p90 stays valid. What was scaled is appended to `notes`.
    """
    doc = copy.deepcopy(dict(raw))
    swept = {a.parts for a in axes}
    for axis, (_, text) in zip(axes, point.values):
        keep_shape = axis.parts[-1] == "median" and axis.parts[:-1] + ("p90",) not in swept
        _set(doc, axis, text, notes if notes is not None else [], keep_shape)
    return doc


def _scaled_p90(table: dict, old: Any, new: Any) -> Any | None:
    """p90 moved by new/old median, in the p90's own form (duration string or number)."""
    p90 = table.get("p90")
    try:
        if isinstance(p90, str):
            o, n, q = parse_duration(old), parse_duration(new), parse_duration(p90)
            return format_duration(q * n / o) if o > 0 else None
        if isinstance(p90, (int, float)) and not isinstance(p90, bool):
            o, n = float(old), float(new)
            x = p90 * n / o if o > 0 else None
            return None if x is None else (round(x) if isinstance(p90, int) else x)
    except (TypeError, ValueError):
        return None
    return None


def _set(doc: dict, axis: Axis, text: str, notes: list[str], keep_shape: bool) -> None:
    targets: list[tuple[Any, str]] = []

    def walk(node: Any, parts: tuple[str, ...], where: str) -> None:
        head, rest = parts[0], parts[1:]
        if isinstance(node, list):
            tables = [x for x in node if isinstance(x, dict)]
            named = [x for x in tables if x.get("name") == head]
            if named:
                for x in named:
                    if rest:
                        walk(x, rest, f"{where}.{head}")
                    else:
                        raise SweepError(f"--sweep {axis.key}: {where}.{head} is a whole table; "
                                         "sweep one of its keys")
                return
            if not tables:
                raise SweepError(f"--sweep {axis.key}: {where} is a list of values, not tables")
            for x in tables:
                walk(x, parts, where)
            return
        if not isinstance(node, dict):
            raise SweepError(f"--sweep {axis.key}: {where} is a value ({_show(node)}), not a table")
        if not rest:
            targets.append((node, head))
            return
        if head not in node:
            node[head] = {}
        walk(node[head], rest, f"{where}.{head}" if where else head)

    walk(doc, axis.parts, "")
    for node, key in targets:
        old = node.get(key)
        node[key] = value_for(text, old)
        if keep_shape and node.get("dist") == "lognormal" and "p90" in node and old is not None:
            p90 = _scaled_p90(node, old, node[key])
            if p90 is not None:
                notes.append(f"{'.'.join(axis.parts[:-1])}.p90 = {_v(p90)} (scaled with the median: "
                             f"p90/median stays {_v(node['p90'])}/{_v(old)})")
                node["p90"] = p90


def value_for(text: str, current: Any) -> Any:
    """The TOML value a sweep value stands for (see module doc)."""
    if isinstance(current, str):
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    try:
        return toml.loads(f"v = {text}")["v"]
    except toml.TOMLDecodeError:
        return text


def _show(x: Any) -> str:
    s = repr(x)
    return s if len(s) <= 40 else s[:37] + "..."


# --------------------------------------------------------------------------- TOML out

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _k(key: str) -> str:
    return key if _BARE.fullmatch(key) else json.dumps(key)


def _v(x: Any) -> str:
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)
    if isinstance(x, str):
        return json.dumps(x, ensure_ascii=False)
    if isinstance(x, dict):
        return "{" + ", ".join(f"{_k(k)} = {_v(v)}" for k, v in x.items()) + "}"
    if isinstance(x, list):
        return "[" + ", ".join(_v(v) for v in x) + "]"
    return json.dumps(str(x))  # dates and times: not used by scenario files


def dumps(doc: Mapping[str, Any], header: str = "") -> str:
    """TOML text for a parsed TOML dict (tables as [headers], [[arms]] as arrays of tables)."""
    lines = [f"# {h}" for h in header.splitlines()] if header else []

    def is_aot(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    def table(d: Mapping[str, Any], path: list[str]) -> None:
        for k, v in d.items():
            if not isinstance(v, dict) and not is_aot(v):
                lines.append(f"{_k(k)} = {_v(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append("")
                lines.append("[" + ".".join(_k(p) for p in path + [k]) + "]")
                table(v, path + [k])
            elif is_aot(v):
                for el in v:
                    lines.append("")
                    lines.append("[[" + ".".join(_k(p) for p in path + [k]) + "]]")
                    table(el, path + [k])

    table(doc, [])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- results

def row(point: Point, axes: Sequence[Axis], arm: str, s: Mapping[str, Any], path: str,
        verdicts: Sequence[Mapping[str, Any]] = (), stopped: str = "completed") -> dict[str, Any]:
    """One sweep.csv row from one arm of a point's summary.json (`stopped`: its "stopped").

    `verdicts`: that arm's threshold results (thresholds.Result.to_dict(), SKIPs left out):
    `thresholds` is "pass", "FAIL" or "-" (none apply to the arm), and `failed_thresholds`
    names the failing ones with what was measured, "; "-separated.
    """
    req = s.get("requests", {})
    sent = req.get("sent", 0)
    ttft = s.get("latency_ms", {}).get("ttft", {})
    bad = [v for v in verdicts if v["status"] == "FAIL"]
    out: dict[str, Any] = {a.key: v for a, (_, v) in zip(axes, point.values)}
    out.update({
        "point": point.index, "arm": arm,
        "cost_per_1000": s.get("cost_usd", {}).get("per_1000"),
        "cost_total": s.get("cost_usd", {}).get("total"),
        "warm_ratio": s.get("cache", {}).get("warm_ratio"),
        "throttle_pct": round(100.0 * req.get("throttled", 0) / sent, 3) if sent else 0.0,
        "ttft_p50_ms": ttft.get("p50"), "ttft_p99_ms": ttft.get("p99"),
        "sent": sent, "ok": req.get("ok", 0), "results": path,
        "thresholds": "FAIL" if bad else "pass" if verdicts else "-",
        "failed_thresholds": "; ".join(f"{v['expr']} (measured {v['measured_text']})" for v in bad),
        "stopped": stopped,
    })
    return out


def point_doc(point: Point, axes: Sequence[Axis], path: str, stopped: str,
              verdicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """sweep.json's record of one point: its values, folder, how it stopped, and every
    threshold verdict (thresholds.Result.to_dict(): arm, expr, status, measured, limit, unit)."""
    return {"point": point.index, "label": point.label(axes), "values": dict(point.values), "results": path,
            "stopped": stopped, "thresholds_passed": not any(v["status"] == "FAIL" for v in verdicts),
            "thresholds": list(verdicts)}


def numeric(text: str) -> tuple[float, str] | None:
    """(number, kind) for a sweep value: a duration (s), a rate (/s) or a plain number; else None."""
    for kind, fn in (("duration", parse_duration), ("rate", parse_rate)):
        try:
            return fn(text), kind
        except ValueError:
            pass
    try:
        x = float(text)
    except ValueError:
        return None
    return (x, "number") if math.isfinite(x) else None


def _fmt(x: float, kind: str) -> str:
    if kind == "duration":  # an interpolated estimate: whole seconds say enough above a minute
        return format_duration(round(x) if x >= 60 else round(x, 3))
    if kind == "rate":
        return f"{x:.4g}/s"
    return f"{x:.4g}"


@dataclass(frozen=True)
class Crossover:
    """Along `key`, with the other keys held at `fixed`: `a` is cheaper below, `b` above."""

    key: str
    fixed: tuple[tuple[str, str], ...]
    cheaper_below: str
    cheaper_above: str
    between: tuple[str, str]     # the two swept values it lies between
    estimate: str                # linear interpolation of the cost difference, same unit
    metric: str = "cost_per_1000"

    # what `estimate` is: a straight line drawn between the two measured points, not a
    # measurement (a step such as a cache TTL can lie anywhere between them)
    ESTIMATE_METHOD = "linear interpolation between the two measured points"

    def text(self) -> str:
        at = f" (with {', '.join(f'{k}={v}' for k, v in self.fixed)})" if self.fixed else ""
        return (f"{self.key}: between {self.between[0]} and {self.between[1]} (~{self.estimate} by linear "
                f"interpolation) {self.cheaper_above} becomes cheaper than {self.cheaper_below} per 1000 requests{at}")

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "fixed": dict(self.fixed), "cheaper_below": self.cheaper_below,
                "cheaper_above": self.cheaper_above, "between": list(self.between),
                "estimate": self.estimate, "estimate_method": self.ESTIMATE_METHOD, "metric": self.metric,
                "text": self.text()}


def crossovers(rows: Sequence[Mapping[str, Any]], axes: Sequence[Axis], *, metric: str = "cost_per_1000",
               rel_tol: float = 0.005) -> list[Crossover]:
    """Where the cheaper of two series swaps along a numeric axis.

    A series is the rows sharing the arm and every other axis' value; two series are
    compared when they differ in one thing only (the arm, or one other axis). Costs
    within `rel_tol` of each other count as a tie (no side wins there).
    """
    found: list[Crossover] = []
    for axis in axes:
        nums = {v: numeric(v) for v in axis.values}
        if len(axis.values) < 2 or any(n is None for n in nums.values()):
            continue
        kind = nums[axis.values[0]][1]  # type: ignore[index]
        order = sorted(axis.values, key=lambda v: nums[v][0])  # type: ignore[index]
        others = [a.key for a in axes if a is not axis]
        series: dict[tuple, dict[str, float]] = {}
        for r in rows:
            if r.get(metric) is None:
                continue
            ident = tuple((k, str(r[k])) for k in others) + (("arm", str(r["arm"])),)
            series.setdefault(ident, {})[str(r[axis.key])] = float(r[metric])
        idents = sorted(series)
        for i, a in enumerate(idents):
            for b in idents[i + 1:]:
                diff = [(x, y) for x, y in zip(a, b) if x != y]
                if len(diff) != 1:
                    continue
                fixed = tuple(x for x, y in zip(a, b) if x == y)
                name_a = _series_name(diff[0][0])
                name_b = _series_name(diff[0][1])
                found.extend(_cross(axis.key, kind, order, nums, series[a], series[b], name_a, name_b,
                                    fixed, metric, rel_tol))
    return found


def _series_name(part: tuple[str, str]) -> str:
    k, v = part
    return v if k == "arm" else f"{k}={v}"


def _cross(key: str, kind: str, order: list[str], nums: Mapping[str, Any], ca: Mapping[str, float],
           cb: Mapping[str, float], name_a: str, name_b: str, fixed: tuple, metric: str,
           rel_tol: float) -> list[Crossover]:
    pts = []
    for v in order:
        if v in ca and v in cb:
            d = ca[v] - cb[v]
            tie = abs(d) <= rel_tol * max(abs(ca[v]), abs(cb[v]), 1e-12)
            pts.append((v, nums[v][0], 0.0 if tie else d))
    out = []
    last = None  # last non-tie point
    for v, x, d in pts:
        if d == 0.0:
            continue
        if last is not None and (last[2] < 0) != (d < 0):
            lv, lx, ld = last
            est = lx + (x - lx) * (ld / (ld - d))
            below, above = (name_a, name_b) if ld < 0 else (name_b, name_a)
            out.append(Crossover(key, fixed, below, above, (lv, v), _fmt(est, kind), metric))
        last = (v, x, d)
    return out
